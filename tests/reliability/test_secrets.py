"""No secret leaks: a whole flow with known secrets, then every log line (structlog events as
logged and as rendered to JSON, stdlib records), every API answer, every exported file and
every webhook body is searched for them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from service.accounts.jobs import PollJob
from service.app import create_app
from service.deliveries.jobs import DeliveryJob
from service.destinations.kinds.webhook import generate_secret
from service.logging import configure_logging
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.runtime import open_runtime
from tests.api.conftest import Keys, key_setup, running
from tests.conftest import TEST_SECRET_KEY, make_settings
from tests.destinations.receiver import Receiver
from tests.reliability.conftest import summary


class Events:
    """A structlog processor keeping a copy of every event dict that passes it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        self.seen.append(dict(event))
        return event


def leaks(secrets: dict[str, str], texts: dict[str, str]) -> list[tuple[str, str]]:
    """(secret name, where) for every secret found in a text."""
    return [
        (name, where)
        for where, text in texts.items()
        for name, value in secrets.items()
        if value in text
    ]


async def test_no_secret_reaches_logs_answers_files_or_webhooks(
    tmp_path: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    configure_logging("DEBUG", "json")  # rendered to stderr, which capsys holds
    raw, rendered = Events(), Events()
    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[raw, *processors[:-1], rendered, processors[-1]])
    # Quieted by configure_logging; heard here because request lines carry URLs and queries.
    caplog.set_level(logging.DEBUG, logger="httpx")

    state = SandboxState(SandboxConfig(seed=9, users=1, workouts=2, anchor=int(time.time())))
    user = next(iter(state.accounts.values()))
    refresh_token = str(state.describe_user(user)["refresh_tokens"][0]["token"])
    webhook_secret = generate_secret()
    export = tmp_path / "export"
    bodies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(f"{response.request.url}\n{response.headers}\n{response.text}")

    receiver = await Receiver([webhook_secret]).start()
    found = Keys()
    try:
        async with run_sandbox(state) as url:
            settings = make_settings(
                tmp_path,
                database_url,
                peloton_api_url=url,
                peloton_auth_url=url,
                peloton_every_n=5,
                webhook_allow_private=True,
                webhook_inline_max_bytes=4 * 1024 * 1024,
                log_format="json",
            )
            async with open_runtime(settings) as rt:
                app = create_app(settings, scheduler=False, runtime=rt, on_started=key_setup(found))
                async with running(app) as client:
                    client.headers["Authorization"] = f"Bearer {found.admin}"
                    client.event_hooks["response"] = [keep]
                    hook = await client.post(
                        "/v1/destinations",
                        json={
                            "name": "hook",
                            "kind": "webhook",
                            "config": {"url": receiver.url()},
                            "secrets": {"secret": webhook_secret},
                            "formats": ["json", "tcx"],
                        },
                    )
                    assert hook.status_code == 201, hook.text
                    folder = await client.post(
                        "/v1/destinations",
                        json={
                            "name": "folder",
                            "kind": "directory",
                            "config": {"root": str(export), "template": "{workout_id}.{ext}"},
                            "formats": ["tcx", "fit"],
                        },
                    )
                    assert folder.status_code == 201, folder.text
                    linked = await client.post(
                        "/v1/accounts",
                        json={
                            "credentials": {"refresh_token": refresh_token},
                            "sync_since": "2000-01-01T00:00:00Z",
                        },
                    )
                    assert linked.status_code == 201, linked.text
                    account_id = linked.json()["id"]
                    assert (await client.post(f"/v1/destinations/{hook.json()['id']}/test")).json()[
                        "ok"
                    ]
                    polls = PollJob(rt)
                    await polls.run_once(account_id)
                    state.tokens.expire_all()  # a refresh mid-flow: new tokens pass through too
                    state.add_workouts(user, kind="cycling_class")
                    await polls.run_once(account_id)
                    await DeliveryJob(rt).run_until_idle()
                    # Everything the API answers about what just happened.
                    for path in (
                        "/v1/accounts",
                        f"/v1/accounts/{account_id}",
                        f"/v1/accounts/{account_id}/sync-runs",
                        "/v1/destinations",
                        f"/v1/destinations/{hook.json()['id']}",
                        f"/v1/destinations/{folder.json()['id']}",
                        "/v1/deliveries",
                        "/v1/workouts",
                        "/v1/keys",
                        "/healthz",
                        "/readyz",
                        "/metrics",
                    ):
                        response = await client.get(path)
                        assert response.status_code < 500, (path, response.text)
                    deliveries = (await client.get("/v1/deliveries")).json()["items"]
                    for delivery in deliveries:
                        await client.get(f"/v1/deliveries/{delivery['id']}")
                    for workout in (await client.get("/v1/workouts")).json()["items"]:
                        await client.get(f"/v1/workouts/{workout['id']}")
    finally:
        await receiver.close()
        structlog.reset_defaults()

    assert {d["state"] for d in deliveries} == {"succeeded"}
    assert len(deliveries) == 3 * 4  # three workouts, two destinations, two formats each
    # Every token Peloton ever handed out, and every one still valid.
    secrets = {"refresh token (linked)": refresh_token}
    secrets.update({f"access token {i}": t for i, t in enumerate(state.tokens.access)})
    secrets.update({f"refresh token {i}": t for i, t in enumerate(state.tokens.refresh)})
    assert len(state.tokens.access) >= 2  # the link's, and the refresh's
    secrets.update(
        {
            "webhook secret": webhook_secret,
            "webhook secret key": webhook_secret.removeprefix("whsec_"),
            "admin API key": found.admin,
            "read-only API key": found.read_only,
            "secret key": TEST_SECRET_KEY,
        }
    )
    files = {str(p): p.read_bytes().decode("latin-1") for p in export.rglob("*") if p.is_file()}
    assert len(files) == 3 * 2
    texts: dict[str, str] = {
        "structlog events (as logged)": json.dumps(raw.seen, default=str),
        "structlog events (as rendered)": json.dumps(rendered.seen, default=str),
        "JSON log output": capsys.readouterr().err,
        "stdlib log records": "\n".join(
            f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records
        ),
        "API answers": "\n".join(bodies),
        "webhook bodies": "\n".join(
            f"{r.headers}\n{r.body.decode('latin-1')}" for r in receiver.requests
        ),
        **files,
    }
    # The search sees real data: what was synced shows up where it should.
    assert "sync.poll.finished" in texts["JSON log output"]
    assert "sync.poll.finished" in texts["structlog events (as logged)"]
    assert "peloton.auth.renewed" in texts["structlog events (as rendered)"]
    assert "/oauth/token" in texts["stdlib log records"]  # httpx logs every request
    assert str(state.describe_user(user)["user_id"]) in texts["API answers"]
    workout_ids = {w.workout_id for w in state.workouts(user)}
    assert all(w in texts["webhook bodies"] for w in workout_ids)
    assert not receiver.unverified() and len(receiver.requests) == 1 + 3 * 2
    found_leaks = leaks(secrets, texts)
    assert found_leaks == []
    summary(
        "secrets",
        faults=len(secrets),
        survived=len(texts),
        lost=len(found_leaks),
    )
