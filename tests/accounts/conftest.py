"""A sandbox Peloton on loopback and a runtime pointed at it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.accounts import linking as accounts
from service.accounts.models import Account
from service.destinations.models import Destination
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.runtime import Runtime, open_runtime
from tests.conftest import make_settings
from tests.support.clock import no_wait

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class World:
    sandbox: SandboxState
    url: str
    runtime: Runtime

    def user(self, index: int = 0) -> tuple[str, str]:
        """(user id, a valid refresh token) of sandbox user ``index``."""
        account = list(self.sandbox.accounts.values())[index]
        info = self.sandbox.describe_user(account)
        return info["user_id"], info["refresh_tokens"][0]["token"]

    async def link(self, index: int = 0, **kwargs: object) -> Account:
        _, refresh = self.user(index)
        request = accounts.LinkRequest(
            refresh_token=refresh,
            sync_since=kwargs.pop("sync_since", LONG_AGO),  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )
        async with self.runtime.sessions() as session, session.begin():
            return await accounts.link(self.runtime, session, request)

    async def add_destination(self, formats: list[str], **values: object) -> Destination:
        async with self.runtime.sessions() as session, session.begin():
            destination = Destination(
                name="folder",
                kind="directory",
                config={"root": "/tmp/unused"},
                formats=formats,
                enabled=True,
                concurrency=2,
                **values,
            )
            session.add(destination)
        return destination


@pytest.fixture
async def world(tmp_path: Path, database_url: str) -> AsyncIterator[World]:
    state = SandboxState(SandboxConfig(seed=3, users=3, workouts=12, anchor=int(time.time())))
    async with run_sandbox(state) as url:
        settings = make_settings(
            tmp_path,
            database_url,
            peloton_api_url=url,
            peloton_auth_url=url,
            max_new_per_poll=5,
        )
        async with open_runtime(settings) as rt:
            rt.sleep = no_wait
            yield World(state, url, rt)
