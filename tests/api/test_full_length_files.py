"""Full-length workouts reach a webhook with default settings: no public URL, the default
inline limit, a receiver with a body limit (413), the service and receiver on one machine."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.peloton.sandbox import SandboxState
from tests.api.conftest import live_service, sandbox_of
from tests.api.test_end_to_end import all_settled, check_file, eventually
from tests.destinations.receiver import Receiver

# Express's express.raw() default, as the receiver had it.
EXPRESS_DEFAULT_LIMIT = 100 * 1024


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    """A Peloton with one user and no workouts yet (the test adds full-length ones)."""
    async with sandbox_of(seed=5, users=1, workouts=0) as world:
        yield world


@pytest.fixture
async def default_api(
    tmp_path: Path, database_url: str, sandbox: tuple[SandboxState, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """``pelosync serve`` with default settings but for the database and Peloton's address:
    no PELOSYNC_PUBLIC_URL, listening on 127.0.0.1."""
    async with live_service(tmp_path, database_url, sandbox, public=False) as live:
        assert live.runtime.settings.public_url is None
        yield live.client, live.url


async def link_and_settle(
    client: httpx.AsyncClient, sandbox: SandboxState, destination_id: int
) -> None:
    user = list(sandbox.accounts.values())[0]
    token = sandbox.describe_user(user)["refresh_tokens"][0]["token"]
    response = await client.post(
        "/v1/accounts",
        json={
            "label": "Sam",
            "credentials": {"refresh_token": token},
            "sync_since": "2000-01-01T00:00:00Z",
        },
    )
    assert response.status_code == 201, response.text
    await client.post(f"/v1/accounts/{response.json()['id']}/sync")

    async def synced_and_sent() -> bool:
        workouts = (await client.get("/v1/workouts")).json()["items"]
        return len(workouts) >= 2 and await all_settled(client, destination_id)

    await eventually(synced_and_sent, "the sync and the deliveries", within=120)


async def test_an_hour_ride_and_gps_run_arrive_inline_or_by_link_after_a_413(
    default_api: tuple[httpx.AsyncClient, str],
    sandbox: tuple[SandboxState, str],
    receiver: Receiver,
    webhook_secret: str,
) -> None:
    client, service_url = default_api
    state, _ = sandbox
    user = list(state.accounts.values())[0]
    state.add_workouts(user, kind="cycling_class", duration=3600, heart_rate=True)
    state.add_workouts(user, kind="outdoor_just_run", duration=3600, heart_rate=True)
    # The receiver of the issue: Express's default body limit.
    receiver.max_body = EXPRESS_DEFAULT_LIMIT
    created = await client.post(
        "/v1/destinations",
        json={
            "name": "express",
            "kind": "webhook",
            "config": {"url": receiver.url()},
            "secrets": {"secret": webhook_secret},
            "formats": ["tcx", "gpx", "fit", "json"],
        },
    )
    assert created.status_code == 201, created.text
    destination = created.json()
    assert destination["config"]["inline_max_bytes"] is None  # the default: 16 MiB

    await link_and_settle(client, state, destination["id"])
    deliveries = (
        await client.get("/v1/deliveries", params={"destination_id": destination["id"]})
    ).json()["items"]
    assert len(deliveries) == 7  # TCX, FIT, JSON of both; GPX of the run
    assert {d["state"] for d in deliveries} == {"succeeded"}, deliveries
    events = {r.headers["webhook-id"]: r for r in receiver.requests}
    sizes = {}
    async with httpx.AsyncClient() as anonymous:  # what the receiver does with a link
        for delivery in deliveries:
            (entry,) = events[delivery["message_id"]].payload["data"]["files"]
            if "content_base64" in entry:
                data = base64.b64decode(entry["content_base64"])
            else:
                assert entry["url"].startswith(service_url + "/v1/files/")  # no public URL
                response = await anonymous.get(entry["url"])
                assert response.status_code == 200
                data = response.content
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            check_file(entry["format"], data)
            sizes[entry["format"], "url" in entry] = max(
                len(data), sizes.get((entry["format"], "url" in entry), 0)
            )
    assert max(size for (fmt, _), size in sizes.items() if fmt == "tcx") > 900 * 1024
    # Files over the receiver's limit were refused (413) and went again at once as links, in
    # the same attempt: one attempt each, none failed.
    # (Which ones depends on sizes near the limit: a 60-minute ride's FIT, with its class laps
    # and steps, is about as big as Express's limit; the TCX and GPX are always over it.)
    assert len(receiver.refused) >= 3
    for delivery in deliveries:
        detail = (await client.get(f"/v1/deliveries/{delivery['id']}")).json()
        log = detail["attempts_log"]
        assert [a["outcome"] for a in log] == ["succeeded"], [a["error"] for a in log]
    # The destination remembers what its receiver takes (shown, and used from then on).
    shown = (await client.get(f"/v1/destinations/{destination['id']}")).json()
    learned = shown["config"]["inline_max_bytes"]
    assert learned is not None and learned * 4 / 3 < EXPRESS_DEFAULT_LIMIT
    refused = len(receiver.refused)
    state.add_workouts(user, kind="cycling_class", duration=2700, heart_rate=True)
    await client.post("/v1/accounts/1/sync")

    async def all_sent() -> bool:
        items = (
            await client.get("/v1/deliveries", params={"destination_id": destination["id"]})
        ).json()["items"]
        return len(items) == 10 and {d["state"] for d in items} == {"succeeded"}

    await eventually(all_sent, "the third workout's deliveries", within=120)
    assert len(receiver.refused) == refused  # its big files went straight as links
