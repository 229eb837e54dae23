"""The whole service through its API only, over loopback: link a sandbox account, add a
webhook, sync, receive and verify the webhooks, download every file, retry a failed delivery,
replay. Runs on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import structlog
from fitdecode import FitReader
from lxml import etree

from tests.api.conftest import LiveApi
from tests.destinations.receiver import Answer, Received, Receiver
from tests.support.waiting import wait_until as eventually

INLINE_MAX = 100_000  # FIT files (tens of KB) travel inline; TCX (hundreds of KB) as links


async def all_settled(client: httpx.AsyncClient, destination_id: int) -> bool:
    response = await client.get(
        "/v1/deliveries", params={"destination_id": destination_id, "state": "pending"}
    )
    return response.json()["items"] == []


async def file_of(entry: dict[str, Any]) -> bytes:
    """A webhook file entry's bytes: inline, or fetched from its signed link (no API key)."""
    if "content_base64" in entry:
        return base64.b64decode(entry["content_base64"])
    async with httpx.AsyncClient() as anonymous:
        response = await anonymous.get(entry["url"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(entry["content_type"])
    return response.content


def check_file(fmt: str, data: bytes) -> None:
    """The bytes are a well-formed file of ``fmt``."""
    if fmt == "fit":
        frames = list(FitReader(data))
        assert frames, "FIT file without frames"
    elif fmt in ("tcx", "gpx"):
        root = etree.fromstring(data)
        assert root.tag.endswith("TrainingCenterDatabase" if fmt == "tcx" else "gpx")
    else:
        assert "samples" in json.loads(data) or json.loads(data)


async def test_sync_webhooks_files_retry_and_replay(
    live_api: LiveApi, receiver: Receiver, webhook_secret: str
) -> None:
    client, sandbox = live_api.client, live_api.sandbox
    user = list(sandbox.accounts.values())[0]
    sandbox.add_workouts(user, kind="outdoor_run", count=1)  # one with a GPS track
    info = sandbox.describe_user(user)
    refresh_token = info["refresh_tokens"][0]["token"]
    with structlog.testing.capture_logs([structlog.contextvars.merge_contextvars]) as logs:
        response = await client.post(
            "/v1/destinations",
            json={
                "name": "receiver",
                "kind": "webhook",
                "config": {"url": receiver.url(), "inline_max_bytes": INLINE_MAX},
                "secrets": {"secret": webhook_secret},
                "formats": ["fit", "tcx", "gpx"],
            },
        )
        assert response.status_code == 201, response.text
        destination = response.json()
        assert destination["secrets"] == {"secret": "••••" + webhook_secret[-4:], "headers": {}}
        assert destination["generated_secret"] is None
        ping = (await client.post(f"/v1/destinations/{destination['id']}/test")).json()
        assert ping["ok"] is True and ping["status_code"] == 200
        assert receiver.requests[-1].payload["type"] == "ping"
        # The first file sent as a link is refused for good (413: nothing smaller to send):
        # it fails, to be retried.
        refused: list[str] = []

        def refuse_first_link(request: Received) -> Answer | None:
            files = request.payload["data"].get("files", [{}])
            if refused or "url" not in files[0]:
                return None
            refused.append(request.headers["webhook-id"])
            return Answer(status=413)

        receiver.rule = refuse_first_link

        # Link: verified with Peloton, answered with who it is; the scheduler syncs it now.
        response = await client.post(
            "/v1/accounts",
            json={
                "label": "Alex",
                "credentials": {"refresh_token": refresh_token},
                "sync_since": "2000-01-01T00:00:00Z",
            },
        )
        assert response.status_code == 201, response.text
        account = response.json()
        assert account["peloton_user_id"] == info["user_id"]
        assert account["peloton_username"] == info["username"]
        response = await client.post(f"/v1/accounts/{account['id']}/sync")
        assert response.status_code == 202
        assert response.json()["status"] in ("started", "already_running")

        async def synced() -> bool:
            runs = (await client.get(f"/v1/accounts/{account['id']}/sync-runs")).json()["items"]
            return bool(runs) and runs[0]["outcome"] == "ok"

        await eventually(synced, "the sync")
        await eventually(lambda: all_settled(client, destination["id"]), "the deliveries")

        workouts = (await client.get("/v1/workouts", params={"account_id": account["id"]})).json()
        expected_ids = {w.workout_id for w in sandbox.workouts(user) if not w.in_progress}
        assert {w["peloton_workout_id"] for w in workouts["items"]} == expected_ids
        assert any(w["has_gps"] for w in workouts["items"])
        wanted = sum(3 if w["has_gps"] else 2 for w in workouts["items"])

        # Every delivery reached the receiver, signed (the receiver verifies each request).
        deliveries = (
            await client.get("/v1/deliveries", params={"destination_id": destination["id"]})
        ).json()["items"]
        assert len(deliveries) == wanted
        failed = [d for d in deliveries if d["state"] == "failed"]
        assert len(failed) == 1 and failed[0]["last_status_code"] == 413
        assert all(d["state"] == "succeeded" for d in deliveries if d not in failed)
        events = [r for r in receiver.requests if r.payload["type"] == "workout.synced"]
        assert len(events) == wanted
        by_message = {r.headers["webhook-id"]: r for r in events}
        linked = []
        for delivery in deliveries:
            entry = by_message[delivery["message_id"]].payload["data"]["files"][0]
            assert entry["format"] == delivery["format"]
            data = await file_of(entry)
            if "url" in entry:
                linked.append(entry["format"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            check_file(entry["format"], data)
            # The same bytes through the API, with the right type and name.
            download = await client.get(
                f"/v1/workouts/{delivery['workout_id']}/files/{delivery['format']}"
            )
            assert download.status_code == 200
            assert download.content == data
            assert download.headers["content-type"].startswith(entry["content_type"])
            assert f'filename="{entry["filename"]}"' in download.headers["content-disposition"]
        # Big files (long TCX) travelled as signed links; FIT files (small) inline.
        assert "tcx" in linked and "fit" not in linked

        # Every format of every workout downloads; GPX only with a GPS track.
        for workout in workouts["items"]:
            detail = (await client.get(f"/v1/workouts/{workout['id']}")).json()
            assert {d["id"] for d in detail["deliveries"]} <= {d["id"] for d in deliveries}
            for fmt in ("tcx", "gpx", "fit", "json"):
                response = await client.get(f"/v1/workouts/{workout['id']}/files/{fmt}")
                if fmt == "gpx" and not workout["has_gps"]:
                    assert response.status_code == 422
                    assert response.headers["content-type"] == "application/problem+json"
                    continue
                assert response.status_code == 200, response.text
                check_file(fmt, response.content)
                assert response.headers["content-disposition"].endswith(f'.{fmt}"')

        # Retry the failed delivery: the same message, now accepted.
        delivery_id = failed[0]["id"]
        detail = (await client.get(f"/v1/deliveries/{delivery_id}")).json()
        assert [a["status_code"] for a in detail["attempts_log"]] == [413]
        response = await client.post(f"/v1/deliveries/{delivery_id}/retry")
        assert response.status_code == 202 and response.json()["state"] == "pending"
        await eventually(lambda: all_settled(client, destination["id"]), "the retry")
        detail = (await client.get(f"/v1/deliveries/{delivery_id}")).json()
        assert detail["state"] == "succeeded"
        assert [a["outcome"] for a in detail["attempts_log"]] == ["failed", "succeeded"]
        resent = [r for r in receiver.requests if r.headers["webhook-id"] == detail["message_id"]]
        assert len(resent) == 2
        failed_workout = (await client.get(f"/v1/workouts/{detail['workout_id']}")).json()
        assert failed_workout["status"] == "delivered"

        # Replay everything: new messages (new ids) for every workout and format.
        before = len(receiver.requests)
        response = await client.post(
            f"/v1/destinations/{destination['id']}/replay",
            json={"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"},
        )
        assert response.status_code == 202 and response.json()["queued"] == wanted
        await eventually(lambda: all_settled(client, destination["id"]), "the replay")
        replayed = receiver.requests[before:]
        assert len(replayed) == wanted
        assert not {r.headers["webhook-id"] for r in replayed} & set(by_message)

        # A new workout on Peloton; "sync now" fetches it at once (the next poll is far off).
        sandbox.add_workouts(user, kind="cycling_class", count=1)
        response = await client.post(f"/v1/accounts/{account['id']}/sync")
        assert response.json() == {"account_id": account["id"], "status": "started"}

        async def fetched() -> bool:
            page = await client.get("/v1/workouts", params={"account_id": account["id"]})
            return len(page.json()["items"]) == len(workouts["items"]) + 1

        await eventually(fetched, "the new workout")
        await eventually(lambda: all_settled(client, destination["id"]), "its deliveries")
        wanted += 2

        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        succeeded = f'pelosync_deliveries{{kind="webhook",state="succeeded"}} {wanted}.0'
        assert succeeded in metrics.text
        assert (
            'pelosync_delivery_attempts_total{kind="webhook",outcome="succeeded"}' in metrics.text
        )

    # No secret in any response the API gave, nor in any log line.
    secrets = [webhook_secret, webhook_secret.removeprefix("whsec_"), refresh_token]
    secrets += [live_api.keys.admin, live_api.keys.read_only]
    for body in live_api.recorder.bodies:
        for secret in secrets:
            assert secret.encode() not in body
    logged = repr(logs)
    for secret in secrets:
        assert secret not in logged
    assert any(e["event"] == "http.request" and e.get("request_id") for e in logs)
