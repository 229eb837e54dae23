"""A destination's deliveries by the handful: retry every failed one, send chosen workouts,
preview a replay without queueing anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from service.deliveries.models import Delivery
from service.runtime import Runtime
from tests.api.conftest import bearer
from tests.api.seed import START
from tests.api.test_lists import Api, seeded


@dataclass(frozen=True)
class Row:
    format: str
    state: str
    attempts: int
    message_id: str


async def deliveries(runtime: Runtime, destination_id: int) -> dict[int, Row]:
    """The destination's deliveries by workout id."""
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(Delivery).where(Delivery.destination_id == destination_id)
        )
        return {
            d.workout_id: Row(d.format, d.state, d.attempts, d.message_id) for d in rows.scalars()
        }


def day_range(days: int = 1) -> dict[str, Any]:
    return {"start": START.isoformat(), "end": (START + timedelta(days=days)).isoformat()}


async def test_replay_preview_lists_what_a_replay_would_queue(api: Api) -> None:
    client, keys, runtime, _ = api
    world = await seeded(api)
    one, two = world["destinations"]
    w = world["workouts"]
    before = await deliveries(runtime, one)
    path = f"/v1/destinations/{one}/replay-preview"
    preview = await client.get(path, params=day_range(), headers=bearer(keys.read_only))
    assert preview.status_code == 200, preview.text
    body = preview.json()
    # Oldest first; the workout that cannot be converted is not replayed.
    assert [p["id"] for p in body["workouts"]] == w[:7]
    assert body["deliveries"] == 7 and body["workouts"][0]["formats"] == ["fit"]
    assert await deliveries(runtime, one) == before  # nothing queued, nothing changed
    # The replay then queues exactly that.
    replayed = await client.post(
        f"/v1/destinations/{one}/replay", json=day_range(), headers=bearer(keys.admin)
    )
    assert replayed.json()["queued"] == body["deliveries"]

    narrow = {"start": (START + timedelta(hours=2)).isoformat(), "end": day_range()["end"]}
    listed = (await client.get(path, params=narrow, headers=bearer(keys.admin))).json()
    assert [p["id"] for p in listed["workouts"]] == w[2:7]
    naive = await client.get(
        path, params={"start": "2026-03-01T00:00:00", "end": "2026-03-02T00:00:00Z"},
        headers=bearer(keys.admin),
    )  # fmt: skip
    assert naive.status_code == 422 and "time zone" in naive.json()["detail"]
    backwards = await client.get(
        path, params={"start": day_range()["end"], "end": START.isoformat()},
        headers=bearer(keys.admin),
    )  # fmt: skip
    assert backwards.status_code == 422 and backwards.json()["detail"].startswith("end")
    missing = await client.get(
        "/v1/destinations/9999/replay-preview", params=day_range(), headers=bearer(keys.admin)
    )
    assert missing.status_code == 404
    assert two  # the other destination is untouched by all this
    assert len(await deliveries(runtime, two)) == 5


async def test_retry_every_failed_delivery_of_a_destination(api: Api) -> None:
    client, keys, runtime, _ = api
    world = await seeded(api)
    one, two = world["destinations"]
    w = world["workouts"]
    path = f"/v1/destinations/{one}/retry-failed"
    refused = await client.post(path, headers=bearer(keys.read_only))
    assert refused.status_code == 403
    before = await deliveries(runtime, one)
    assert {d.state for d in before.values()} >= {"failed"}
    assert before[w[1]].attempts > 0

    retried = await client.post(path, headers=bearer(keys.admin))
    assert retried.status_code == 202 and retried.json() == {"destination_id": one, "queued": 2}
    after = await deliveries(runtime, one)
    assert after[w[1]].state == "pending" and after[w[4]].state == "pending"
    # Attempt numbers go on across a retry (the schedule restarts: budget_start).
    assert after[w[1]].attempts == before[w[1]].attempts and after[w[0]].state == "succeeded"
    again = await client.post(path, headers=bearer(keys.admin))
    assert again.json()["queued"] == 0
    none = await client.post(f"/v1/destinations/{two}/retry-failed", headers=bearer(keys.admin))
    assert none.json()["queued"] == 0
    gone = await client.post("/v1/destinations/9999/retry-failed", headers=bearer(keys.admin))
    assert gone.status_code == 404


async def test_send_chosen_workouts_to_a_destination(api: Api) -> None:
    client, keys, runtime, _ = api
    world = await seeded(api)
    one, two = world["destinations"]
    w = world["workouts"]
    path = f"/v1/destinations/{two}/send"
    before = await deliveries(runtime, two)

    assert (
        await client.post(path, json={"workout_ids": [w[5]]}, headers=bearer(keys.read_only))
    ).status_code == 403
    unknown = await client.post(
        path, json={"workout_ids": [w[5], 99999]}, headers=bearer(keys.admin)
    )
    assert unknown.status_code == 404 and "99999" in unknown.json()["detail"]
    empty = await client.post(path, json={"workout_ids": []}, headers=bearer(keys.admin))
    assert empty.status_code == 422
    assert await deliveries(runtime, two) == before  # nothing queued by a refused request

    sent = await client.post(
        path, json={"workout_ids": [w[0], w[5], w[7], w[5]]}, headers=bearer(keys.admin)
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["queued"] == 2
    assert sent.json()["skipped"] == [{"workout_id": w[7], "reason": "it could not be converted"}]
    after = await deliveries(runtime, two)
    assert after[w[5]].state == "pending" and after[w[5]].format == "json"
    # Sent again: a new message (new message id), pending now.
    assert after[w[0]].state == "pending"
    assert after[w[0]].message_id != before[w[0]].message_id
    assert w[7] not in after
