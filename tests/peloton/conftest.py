"""Fixtures for the Peloton client tests: the fake Peloton served over loopback HTTP by an
in-process uvicorn, a controllable clock, and a sleep that only records."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from service.peloton.models import PelotonConfig
from tests.peloton.fake_peloton import PASSWORD_CLIENT, WEB_CLIENT, FakePeloton
from tests.support.clock import FakeClock, RecordingSleep
from tests.support.servers import Switch, serve


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def no_sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[str, Switch]]:
    """One server for the whole session; each test installs its own fake."""
    with serve("peloton") as served:
        yield served


@pytest.fixture
def fake_peloton(fake_server: tuple[str, Switch]) -> FakePeloton:
    """A fresh fake for this test, served at ``fake_url``."""
    fake = FakePeloton()
    fake_server[1].app = fake.app()
    return fake


@pytest.fixture
def fake_url(fake_server: tuple[str, Switch], fake_peloton: FakePeloton) -> str:
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
