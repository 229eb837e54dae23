"""The admin API for tests: in-process (ASGI) or served over loopback with the scheduler on,
against a sandbox Peloton and a verifying webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.auth import service as keys
from service.auth.models import Role
from service.config import Settings
from service.destinations.kinds.webhook import generate_secret
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.peloton.sandbox.server import bind
from service.runtime import Runtime, open_runtime
from tests.conftest import make_settings
from tests.destinations.receiver import Receiver
from tests.support.clock import no_wait


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def serve(app: FastAPI, sock: socket.socket, **options: Any) -> AsyncIterator[None]:
    """Serve ``app`` (lifespan included) on a bound socket in this event loop; ``options``
    go to ``uvicorn.Config`` (e.g. the proxy headers ``serve`` sets)."""
    config = uvicorn.Config(
        app, lifespan="on", log_config=None, access_log=False, ws="none", **options
    )
    server = _Embedded(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the API server stopped during start-up")
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Keys:
    admin: str = ""
    read_only: str = ""


@contextlib.asynccontextmanager
async def running(app: FastAPI, runtime: Runtime | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and give an in-process client (no key set)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def key_setup(found: Keys) -> Callable[[Runtime], Awaitable[None]]:
    """``on_started``: the first admin key (as ``serve`` makes it) and a read-only one."""

    async def setup(rt: Runtime) -> None:
        rt.sleep = no_wait
        async with rt.sessions() as session, session.begin():
            first = await keys.ensure_first_key(session, rt.clock())
            assert first is not None
            found.admin = first
            _, found.read_only = await keys.create_key(
                session, name="dashboard", role=Role.READ_ONLY, now=rt.clock()
            )

    return setup


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Recorder:
    """Every response body the tests saw, to look for secrets in."""

    bodies: list[bytes] = field(default_factory=list)

    async def hook(self, response: httpx.Response) -> None:
        await response.aread()
        self.bodies.append(response.content)
        self.bodies.append(str(response.headers).encode())


@contextlib.asynccontextmanager
async def sandbox_of(
    *, seed: int = 11, users: int = 2, workouts: int = 3
) -> AsyncIterator[tuple[SandboxState, str]]:
    """A sandbox Peloton serving ``users`` with ``workouts`` each: its state and URL."""
    state = SandboxState(
        SandboxConfig(seed=seed, users=users, workouts=workouts, anchor=int(time.time()))
    )
    async with run_sandbox(state) as url:
        yield state, url


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    async with sandbox_of() as world:
        yield world


@pytest.fixture
async def webhook_secret() -> str:
    return generate_secret()


@pytest.fixture
async def receiver(webhook_secret: str) -> AsyncIterator[Receiver]:
    server = await Receiver([webhook_secret]).start()
    try:
        yield server
    finally:
        await server.close()
    assert not server.unverified(), "every webhook request must verify"


def api_settings(tmp_path: Path, database_url: str, peloton_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {"webhook_allow_private": True, **extra}
    return make_settings(
        tmp_path, database_url, peloton_api_url=peloton_url, peloton_auth_url=peloton_url, **values
    )


@dataclass
class LiveApi:
    url: str
    client: httpx.AsyncClient  # admin key set
    keys: Keys
    runtime: Runtime
    sandbox: SandboxState
    recorder: Recorder


@contextlib.asynccontextmanager
async def live_service(
    tmp_path: Path, database_url: str, sandbox: tuple[SandboxState, str], *, public: bool = True
) -> AsyncIterator[LiveApi]:
    """The service as ``pelosync serve`` runs it (scheduler on), listening on loopback; with
    its URL as ``PELOSYNC_PUBLIC_URL`` unless not ``public``."""
    state, peloton_url = sandbox
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings = api_settings(
        tmp_path,
        database_url,
        peloton_url,
        public_url=url if public else None,
        port=port,
        tick_seconds=0.1,
    )
    found = Keys()
    app = create_app(settings, on_started=key_setup(found))
    recorder = Recorder()
    async with (
        serve(app, sock),
        httpx.AsyncClient(
            base_url=url,
            headers=bearer(found.admin),
            timeout=30,
            event_hooks={"response": [recorder.hook]},
        ) as client,
    ):
        yield LiveApi(url, client, found, app.state.runtime, state, recorder)


@pytest.fixture
async def live_api(
    tmp_path: Path, database_url: str, sandbox: tuple[SandboxState, str]
) -> AsyncIterator[LiveApi]:
    """The service as ``pelosync serve`` runs it (scheduler on), over loopback."""
    async with live_service(tmp_path, database_url, sandbox) as live:
        yield live


@pytest.fixture
async def api(
    tmp_path: Path, database_url: str, sandbox: tuple[SandboxState, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]]:
    """The app in-process (no scheduler): a client without a key, the keys, the runtime."""
    state, peloton_url = sandbox
    settings = api_settings(tmp_path, database_url, peloton_url)
    found = Keys()
    async with open_runtime(settings) as rt:
        app = create_app(settings, scheduler=False, runtime=rt, on_started=key_setup(found))
        async with running(app) as client:
            yield client, found, rt, state
