"""Fixtures for the Peloton client tests: the fake Peloton served over loopback HTTP by an
in-process uvicorn, a controllable clock, and a sleep that only records."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from service.peloton.models import PelotonConfig
from tests.peloton.fake_peloton import PASSWORD_CLIENT, WEB_CLIENT, FakePeloton


class FakeClock:
    """A settable UTC clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingSleep:
    """Replaces asyncio.sleep in the client: records the wanted waits, waits for nothing."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def no_sleep() -> RecordingSleep:
    return RecordingSleep()


class _Switch:
    """The served ASGI app: forwards to the current test's fake."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no fake installed"
        await self.app(scope, receive, send)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[str, _Switch]]:
    """One uvicorn for the whole session, on 127.0.0.1 and a free port, in its own thread (so
    its event loop outlives each test's loop and no test waits for a server shutdown)."""
    switch = _Switch()
    config = uvicorn.Config(
        switch,
        host="127.0.0.1",
        port=0,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-peloton", daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started or not thread.is_alive():
            break
        time.sleep(0.005)
    assert server.started, "the fake Peloton server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", switch
    server.should_exit = True
    thread.join()


@pytest.fixture
def fake_peloton(fake_server: tuple[str, _Switch]) -> FakePeloton:
    """A fresh fake for this test, served at ``fake_url``."""
    fake = FakePeloton()
    fake_server[1].app = fake.app()
    return fake


@pytest.fixture
def fake_url(fake_server: tuple[str, _Switch], fake_peloton: FakePeloton) -> str:
    """Base URL of the fake (Auth0 and API on one host)."""
    return fake_server[0]


@pytest.fixture
def fake_config(fake_url: str) -> PelotonConfig:
    return PelotonConfig(
        api_url=fake_url,
        auth_url=fake_url,
        redirect_uri=f"{fake_url}/callback",
        web_client_id=WEB_CLIENT,
        password_client_id=PASSWORD_CLIENT,
        concurrency=4,
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The app-wide client the Peloton client gets injected."""
    async with httpx.AsyncClient() as client:
        yield client
