"""Workouts and deliveries: filters, cursor pagination, details, files, signed links."""

from __future__ import annotations

from typing import Any

import httpx

from service.deliveries.schemas import DeliveryOut
from service.peloton.sandbox import SandboxState
from service.runtime import Runtime
from service.schemas import Page
from service.workouts.schemas import WorkoutOut
from tests.api import seed
from tests.api.conftest import Keys, bearer

Api = tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]


async def seeded(api: Api) -> dict[str, Any]:
    _, _, runtime, _ = api
    async with runtime.sessions() as session, session.begin():
        return await seed.world(session)


async def walk(client: httpx.AsyncClient, key: str, path: str, **params: Any) -> list[int]:
    """Every id of a list, page by page."""
    ids: list[int] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(path, params=query, headers=bearer(key))).json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_workouts_filter_and_page_newest_first(api: Api) -> None:
    client, keys, _, _ = api
    world = await seeded(api)
    w = world["workouts"]
    key = keys.read_only
    assert await walk(client, key, "/v1/workouts", limit=3) == w[::-1]
    first = world["accounts"][0]
    assert await walk(client, key, "/v1/workouts", account_id=first, limit=2) == w[::2][::-1]
    assert await walk(client, key, "/v1/workouts", discipline="running") == [w[6], w[3], w[0]]
    window = {"started_from": "2026-03-01T09:00:00Z", "started_before": "2026-03-01T12:00:00Z"}
    assert await walk(client, key, "/v1/workouts", **window) == [w[4], w[3], w[2]]
    by_status = {
        status: await walk(client, key, "/v1/workouts", status=status)
        for status in ("failed", "pending", "delivered", "unconvertible", "no_deliveries")
    }
    assert by_status == {
        "failed": [w[4], w[1]],
        "pending": [w[2]],
        "delivered": [w[3], w[0]],
        "unconvertible": [w[7]],
        "no_deliveries": [w[6], w[5]],
    }
    page = (await client.get("/v1/workouts", params={"limit": 8}, headers=bearer(key))).json()
    statuses = {item["id"]: item["status"] for item in page["items"]}
    assert statuses[w[1]] == "failed" and statuses[w[7]] == "unconvertible"
    assert all("raw_workout" not in item for item in page["items"])

    bad = await client.get("/v1/workouts", params={"cursor": "bm9wZQ"}, headers=bearer(key))
    assert bad.status_code == 422 and bad.json()["detail"].startswith("cursor")
    assert (await client.get("/v1/workouts", params={"limit": 201}, headers=bearer(key))).json()[
        "errors"
    ][0]["field"] == "limit"
    wrong_kind = await client.get("/v1/workouts", params={"status": "lost"}, headers=bearer(key))
    assert wrong_kind.json()["errors"][0]["field"] == "status"


async def test_list_bodies_are_what_their_schemas_dump(api: Api) -> None:
    """The lists write rows straight to JSON: every item must still validate against the
    route's schema and come out exactly as pydantic would write it (times in UTC with ``Z``,
    floats, nulls, the status)."""
    client, keys, _, _ = api
    await seeded(api)
    for path, model in (("/v1/workouts", WorkoutOut), ("/v1/deliveries", DeliveryOut)):
        for params in ({"limit": 200}, {"limit": 2}):
            answer = await client.get(path, params=params, headers=bearer(keys.read_only))
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "application/json"
            page = Page[model].model_validate_json(answer.content)  # type: ignore[valid-type]
            assert page.items
            assert answer.json() == page.model_dump(mode="json"), path
            text = answer.text
            assert '+00:00"' not in text and 'Z"' in text


async def test_one_workout_its_files_and_signed_links(api: Api) -> None:
    client, keys, _, _ = api
    world = await seeded(api)
    w = world["workouts"]
    key = bearer(keys.read_only)
    detail = (await client.get(f"/v1/workouts/{w[0]}", headers=key)).json()
    assert detail["formats"] == ["tcx", "gpx", "fit", "json"] and detail["has_gps"]
    assert [d["state"] for d in detail["deliveries"]] == ["succeeded", "succeeded"]
    cycling = (await client.get(f"/v1/workouts/{w[1]}", headers=key)).json()
    assert "gpx" not in cycling["formats"] and cycling["status"] == "failed"

    fit = await client.get(f"/v1/workouts/{w[0]}/files/fit", headers=key)
    assert fit.status_code == 200 and fit.content[8:12] == b".FIT"
    assert fit.headers["content-type"] == "application/vnd.ant.fit"
    assert fit.headers["content-disposition"].startswith(
        'attachment; filename="2026-03-01_running_'
    )
    no_gps = await client.get(f"/v1/workouts/{w[1]}/files/gpx", headers=key)
    assert no_gps.status_code == 422 and "GPS" in no_gps.json()["detail"]
    broken = await client.get(f"/v1/workouts/{w[7]}/files/tcx", headers=key)
    assert broken.status_code in (200, 422)
    assert (await client.get("/v1/workouts/9999/files/fit", headers=key)).status_code == 404
    assert (await client.get(f"/v1/workouts/{w[0]}/files/pdf", headers=key)).status_code == 422

    link = (await client.get(f"/v1/workouts/{w[0]}/files/fit/signed-url", headers=key)).json()
    url = httpx.URL(link["url"])
    anonymous = await client.get(url.raw_path.decode())
    assert anonymous.status_code == 200 and anonymous.content == fit.content
    params = dict(url.params)
    for change in (
        {"signature": params["signature"][:-2] + "xx"},
        {"expires": str(int(params["expires"]) + 1)},
        {"expires": "1000"},
    ):
        forged = await client.get(url.path, params={**params, **change})
        assert forged.status_code == 403, change
    other = await client.get(f"/v1/files/workouts/{w[0]}/tcx", params=params)
    assert other.status_code == 403  # a link opens one file only


async def test_deliveries_filter_page_detail_and_retry(api: Api) -> None:
    client, keys, _, _ = api
    world = await seeded(api)
    d, dest = world["deliveries"], world["destinations"]
    key = keys.read_only
    assert await walk(client, key, "/v1/deliveries", limit=4) == d[::-1]
    assert await walk(client, key, "/v1/deliveries", state="failed") == [d[8], d[2]]
    assert (
        await walk(client, key, "/v1/deliveries", destination_id=dest[1], limit=2) == d[1::2][::-1]
    )
    assert await walk(client, key, "/v1/deliveries", destination_id=dest[0], state="succeeded") == [
        d[6],
        d[0],
    ]
    assert await walk(client, key, "/v1/deliveries", workout_id=world["workouts"][1]) == [
        d[3],
        d[2],
    ]

    detail = (await client.get(f"/v1/deliveries/{d[2]}", headers=bearer(key))).json()
    assert detail["attempts_log"][0]["status_code"] == 413
    assert detail["attempts_log"][0]["error"] == "too large"

    admin = bearer(keys.admin)
    retried = await client.post(f"/v1/deliveries/{d[2]}/retry", headers=admin)
    assert retried.status_code == 202
    assert retried.json()["state"] == "pending" and retried.json()["attempts"] == 1  # counted on
    done = await client.post(f"/v1/deliveries/{d[0]}/retry", headers=admin)
    assert done.status_code == 409 and "replay" in done.json()["detail"]
    assert (await client.post("/v1/deliveries/99999/retry", headers=admin)).status_code == 404
    assert (await client.get("/v1/deliveries/99999", headers=admin)).status_code == 404
