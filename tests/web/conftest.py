"""The dashboard for tests: the app in-process (pages and forms over ASGI) or served over
loopback with the scheduler on (for the browser), against a sandbox Peloton."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from lxml import html

from service.app import create_app
from service.destinations.kinds.webhook import generate_secret
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.peloton.sandbox.server import bind
from service.runtime import Runtime, open_runtime
from tests.api.conftest import Keys, api_settings, key_setup, running, serve
from tests.api.seed import world
from tests.destinations.receiver import Receiver

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def page(response: httpx.Response) -> Any:
    """The response's HTML, parsed (query it with ``.xpath``)."""
    return html.fromstring(response.text)


def csrf_of(response: httpx.Response) -> str:
    found = CSRF.search(response.text)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def fresh(client: httpx.AsyncClient) -> str:
    """A new form token, as a page gives one (each is good for one form submission)."""
    return csrf_of(await client.get("/"))


async def sign_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign ``client`` in with ``key``; the session's CSRF token."""
    form = await client.get("/login")
    assert form.status_code == 200
    response = await client.post("/login", data={"csrf": csrf_of(form), "key": key})
    assert response.status_code == 303, response.text
    return csrf_of(await client.get("/"))


@dataclass
class Site:
    app: FastAPI
    client: httpx.AsyncClient  # no session yet
    keys: Keys
    runtime: Runtime
    sandbox: SandboxState
    peloton_url: str


@pytest.fixture
async def site(tmp_path: Path, database_url: str) -> AsyncIterator[Site]:
    """The app in-process, scheduler off: no poll or delivery runs unless a test asks."""
    state = SandboxState(SandboxConfig(seed=5, users=2, workouts=2))
    async with run_sandbox(state) as peloton_url:
        settings = api_settings(tmp_path, database_url, peloton_url)
        found = Keys()
        async with open_runtime(settings) as rt:
            app = create_app(settings, scheduler=False, runtime=rt, on_started=key_setup(found))
            async with running(app) as client:
                yield Site(app, client, found, rt, state, peloton_url)


@pytest.fixture
async def seeded(site: Site) -> dict[str, Any]:
    """Accounts, workouts, destinations and deliveries in every state (tests.api.seed)."""
    async with site.runtime.sessions() as session, session.begin():
        return await world(session)


@pytest.fixture
def webhook_secret() -> str:
    return generate_secret()


@pytest.fixture
async def receiver(webhook_secret: str) -> AsyncIterator[Receiver]:
    """A webhook receiver on loopback that verifies every request it gets."""
    server = await Receiver([webhook_secret]).start()
    try:
        yield server
    finally:
        await server.close()
    assert not server.unverified(), "every webhook request must verify"


@dataclass
class LiveSite:
    url: str
    keys: Keys
    runtime: Runtime
    sandbox: SandboxState


@pytest.fixture
async def live_site(tmp_path: Path, database_url: str) -> AsyncIterator[LiveSite]:
    """The service as ``pelosync serve`` runs it (scheduler on), over loopback."""
    state = SandboxState(SandboxConfig(seed=7, users=1, workouts=0))
    async with run_sandbox(state) as peloton_url:
        sock = bind("127.0.0.1", 0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = api_settings(
            tmp_path, database_url, peloton_url, public_url=url, tick_seconds=0.1
        )
        found = Keys()
        app = create_app(settings, on_started=key_setup(found))
        async with serve(app, sock):
            yield LiveSite(url, found, app.state.runtime, state)
