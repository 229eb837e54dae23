"""Fixtures for the sandbox tests: a small sandbox served by uvicorn in the test's event loop
(on 127.0.0.1 and a free port) and an httpx client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(seed=7, users=2, workouts=12)


@pytest.fixture
def sandbox_state(sandbox_config: SandboxConfig) -> SandboxState:
    return SandboxState(sandbox_config)


@pytest.fixture
async def sandbox_url(sandbox_state: SandboxState) -> AsyncIterator[str]:
    async with run_sandbox(sandbox_state) as url:
        yield url


@pytest.fixture
async def http(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10) as client:
        yield client
