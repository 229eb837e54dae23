"""Bad query strings (times, cursors) answer one 422 problem naming the parameter, on every list,
never a 500 or a dropped connection."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from service.peloton.sandbox import SandboxState
from service.runtime import Runtime
from tests.api.conftest import Keys, bearer

Api = tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]

ID_LISTS = ["/v1/accounts", "/v1/destinations", "/v1/deliveries", "/v1/accounts/1/sync-runs"]


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


BAD_ID_CURSORS = [
    "[null, 99999999999999999999]",
    "[null, 2147483648]",
    "[null, 0]",
    "[null, -1]",
    "[null, 1e20]",
    "[null, 1.5]",
    "[null, null]",
    "[null, true]",
    "[null]",
    "{}",
    "null",
]
BAD_TIME_CURSORS = [
    '["2026-01-01T00:00:00Z", 1e20]',
    '["2026-01-01T00:00:00Z", 99999999999999999999]',
    '["2026-01-01T00:00:00", 5]',  # no offset
    '["0001-01-01T00:00:00+14:00", 5]',  # before year 1 in UTC
    '["9999-12-31T23:59:59-14:00", 5]',  # after 9999 in UTC
    "[null, 5]",
    "[1700000000, 5]",
    '["yesterday", 5]',
]


def assert_problem(response: httpx.Response, name: str) -> None:
    assert response.status_code == 422, (response.request.url, response.text)
    if response.headers["content-type"].startswith("application/problem+json"):
        assert name in json.dumps(response.json())


@pytest.mark.parametrize("path", ID_LISTS)
async def test_bad_cursors_on_id_lists_are_422(api: Api, path: str) -> None:
    client, keys, _, _ = api
    for raw in BAD_ID_CURSORS:
        response = await client.get(
            path, params={"cursor": cursor(raw)}, headers=bearer(keys.admin)
        )
        assert_problem(response, "cursor")


async def test_bad_cursors_and_times_on_workouts_are_422(api: Api) -> None:
    client, keys, _, _ = api
    for raw in BAD_TIME_CURSORS:
        response = await client.get(
            "/v1/workouts", params={"cursor": cursor(raw)}, headers=bearer(keys.admin)
        )
        assert_problem(response, "cursor")
    for name in ("started_from", "started_before"):
        for value in (
            "2026-01-01",
            "2026-01-01T00:00:00",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "now",
        ):
            response = await client.get(
                "/v1/workouts", params={name: value}, headers=bearer(keys.admin)
            )
            assert_problem(response, name)
    fine = await client.get(
        "/v1/workouts",
        params={"started_from": "0001-01-01T00:00:00Z", "started_before": "9999-12-31T23:59:59Z"},
        headers=bearer(keys.admin),
    )
    assert fine.status_code == 200, fine.text


async def test_replay_and_sync_since_refuse_times_out_of_range(api: Api) -> None:
    client, keys, _, _ = api
    admin = bearer(keys.admin)
    body = {"start": "0001-01-01T00:00:00+14:00", "end": "2026-01-01T00:00:00Z"}
    replay = await client.post("/v1/destinations/1/replay", json=body, headers=admin)
    assert_problem(replay, "start")
    naive = {"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00Z"}
    assert_problem(
        await client.post("/v1/destinations/1/replay", json=naive, headers=admin), "start"
    )
    patched = await client.patch(
        "/v1/accounts/1", json={"sync_since": "0001-01-01T00:00:00+14:00"}, headers=admin
    )
    assert_problem(patched, "sync_since")
