"""Property-based checks of the whole API against its own OpenAPI document (schemathesis).

Every operation gets generated requests, valid and invalid, sent in-process to the ASGI app
with an admin key. No request may end in a 5xx, and every response must match the document
(status code, content type, body schema). Nothing leaves the machine: Peloton is the sandbox,
other services point at a closed loopback port, and DNS answers a documentation address.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.accounts import linking as accounts
from service.accounts.jobs import PollJob
from service.app import create_app
from service.destinations import ssrf
from service.destinations.kinds.webhook import generate_secret
from service.destinations.models import Destination
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.runtime import Runtime
from tests.accounts.conftest import LONG_AGO
from tests.api.conftest import Keys, api_settings, bearer, key_setup

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
CLOSED = "http://127.0.0.1:9"  # nothing listens there: connections are refused at once


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxState, str]]:
    """A sandbox Peloton served from a thread of its own (the app runs in schemathesis')."""
    state = SandboxState(SandboxConfig(seed=5, users=1, workouts=2, anchor=int(time.time())))
    started = threading.Event()
    url: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        async with run_sandbox(state) as base:
            url.append(base)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(30), "the sandbox did not start"
    yield state, url[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    loop.close()


async def _documentation_address(_host: str, _port: int) -> list[str]:
    return ["192.0.2.1"]  # TEST-NET-1: refused by the SSRF guard, never connected to


def seed(state: SandboxState, keys: Keys) -> Callable[[Runtime], Awaitable[None]]:
    """Keys, a linked and synced account, a webhook: real objects for the generated ids."""
    make_keys = key_setup(keys)

    async def setup(rt: Runtime) -> None:
        await make_keys(rt)
        user = state.describe_user(next(iter(state.accounts.values())))
        request = accounts.LinkRequest(
            refresh_token=user["refresh_tokens"][0]["token"], sync_since=LONG_AGO
        )
        async with rt.sessions() as session, session.begin():
            session.add(
                Destination(
                    name="hook",
                    kind="webhook",
                    config={"url": "https://hooks.example.com/in"},
                    secrets_encrypted=rt.secrets.encrypt_json({"secret": generate_secret()}),
                    formats=["fit", "json"],
                )
            )
            account = await accounts.link(rt, session, request)
        await PollJob(rt).run_once(account.id)

    return setup


def test_api_conforms_to_its_schema(
    tmp_path: Path, sandbox: tuple[SandboxState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ssrf, "system_resolver", _documentation_address)
    state, sandbox_url = sandbox
    found = Keys()
    app = create_app(
        api_settings(
            tmp_path,
            f"sqlite+aiosqlite:///{tmp_path / 'schemathesis.db'}",
            sandbox_url,
            webhook_allow_private=False,
            strava_client_id="1234",
            strava_client_secret="not-a-real-secret",
            strava_api_url=CLOSED,
            strava_oauth_url=CLOSED,
            intervals_api_url=CLOSED,
            runalyze_api_url=CLOSED,
            garmin_enabled=True,
            garmin_upload_url=CLOSED,
            garmin_token_url=CLOSED,
            garmin_profile_url=CLOSED,
        ),
        scheduler=False,
        on_started=seed(state, found),
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    try:
        headers = bearer(found.admin)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 30
        for operation in operations:
            for mode, examples in EXAMPLES.items():

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                )
                def check(case: schemathesis.Case) -> None:
                    response = case.call(headers=headers)
                    case.validate_response(response, checks=CHECKS, headers=headers)

                try:
                    check()
                except Unsatisfiable:
                    # No invalid request exists for an operation without inputs (/healthz).
                    assert mode is GenerationMode.NEGATIVE
    finally:
        shutdown_lifespans()
