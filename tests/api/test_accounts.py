"""``/v1/accounts`` in-process against the sandbox Peloton."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from service.accounts.jobs import PollJob
from service.accounts.models import Account, AccountStatus
from service.deliveries.models import Delivery
from service.destinations.models import Destination
from service.peloton.sandbox import SandboxState
from service.runtime import Runtime
from service.workouts.models import Workout
from tests.api.conftest import Keys, bearer

Api = tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]


def user(state: SandboxState, index: int = 0) -> dict[str, object]:
    return state.describe_user(list(state.accounts.values())[index])


def token(info: dict[str, object]) -> str:
    return info["refresh_tokens"][0]["token"]  # type: ignore[index,no-any-return]


async def test_link_with_a_password_keeps_it_encrypted_and_never_shows_it(api: Api) -> None:
    client, keys, runtime, state = api
    admin = bearer(keys.admin)
    info = user(state)
    response = await client.post(
        "/v1/accounts",
        json={
            "label": "Sam",
            "credentials": {"username": info["username"], "password": info["password"]},
            "poll_interval_s": 3600,
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["peloton_user_id"] == info["user_id"]
    assert body["auth_method"] == "password"
    assert body["poll_interval_s"] == 3600
    assert body["counts"] == {"workouts": 0, "deliveries": {}}
    for path in ("/v1/accounts", f"/v1/accounts/{body['id']}"):
        text = (await client.get(path, headers=admin)).text
        assert str(info["password"]) not in text
        assert "credentials" not in text and "token" not in text.lower()

    # The same Peloton user again: a conflict.
    again = await client.post(
        "/v1/accounts", json={"credentials": {"refresh_token": token(info)}}, headers=admin
    )
    assert again.status_code == 409


async def test_refused_and_malformed_credentials_name_the_problem(api: Api) -> None:
    client, keys, _, _ = api
    admin = bearer(keys.admin)
    refused = await client.post(
        "/v1/accounts", json={"credentials": {"refresh_token": "not-a-token"}}, headers=admin
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"].startswith("credentials:")
    assert "not-a-token" not in refused.text
    both = await client.post(
        "/v1/accounts",
        json={"credentials": {"refresh_token": "a", "username": "u", "password": "p"}},
        headers=admin,
    )
    assert both.status_code == 422 and "not both" in both.json()["detail"]
    short = await client.post(
        "/v1/accounts",
        json={"credentials": {"refresh_token": "abc"}, "poll_interval_s": 10},
        headers=admin,
    )
    assert short.status_code == 422
    assert short.json()["errors"][0]["field"] == "poll_interval_s"
    extra = await client.post("/v1/accounts", json={"credentials": {"cookie": "x"}}, headers=admin)
    assert extra.json()["errors"][0]["field"] == "credentials.cookie"


async def test_update_pause_list_runs_and_delete_with_everything(api: Api) -> None:
    client, keys, runtime, state = api
    admin = bearer(keys.admin)
    ids = []
    for index in (0, 1):
        response = await client.post(
            "/v1/accounts",
            json={
                "credentials": {"refresh_token": token(user(state, index))},
                "sync_since": "2001-01-01T00:00:00Z",
            },
            headers=admin,
        )
        ids.append(response.json()["id"])
    async with runtime.sessions() as session, session.begin():
        session.add(
            Destination(name="d", kind="directory", config={"root": "/tmp"}, formats=["json"])
        )
    await PollJob(runtime).run_once(ids[0])

    first = (await client.get("/v1/accounts", params={"limit": 1}, headers=admin)).json()
    assert [a["id"] for a in first["items"]] == [ids[0]]
    second = (
        await client.get("/v1/accounts", params={"cursor": first["next_cursor"]}, headers=admin)
    ).json()
    assert [a["id"] for a in second["items"]] == [ids[1]] and second["next_cursor"] is None

    detail = (await client.get(f"/v1/accounts/{ids[0]}", headers=admin)).json()
    workouts = detail["counts"]["workouts"]
    assert workouts == 3 and detail["counts"]["deliveries"] == {"pending": 3}
    assert detail["last_poll_at"] is not None and detail["next_poll_at"] is not None
    runs = (await client.get(f"/v1/accounts/{ids[0]}/sync-runs", headers=admin)).json()
    assert [(r["outcome"], r["new"], r["trigger"]) for r in runs["items"]] == [("ok", 3, "manual")]

    paused = await client.patch(
        f"/v1/accounts/{ids[0]}", json={"paused": True, "label": "Renamed"}, headers=admin
    )
    assert paused.status_code == 200
    assert paused.json()["paused"] and paused.json()["next_poll_at"] is None
    assert paused.json()["label"] == "Renamed"
    earlier = await client.patch(
        f"/v1/accounts/{ids[0]}", json={"sync_since": "2000-01-01T00:00:00Z"}, headers=admin
    )
    assert earlier.json()["backfill_complete"] is False
    null = await client.patch(f"/v1/accounts/{ids[0]}", json={"label": None}, headers=admin)
    assert null.status_code == 422

    assert (await client.delete(f"/v1/accounts/{ids[0]}", headers=admin)).status_code == 204
    assert (await client.get(f"/v1/accounts/{ids[0]}", headers=admin)).status_code == 404
    assert (await client.delete(f"/v1/accounts/{ids[0]}", headers=admin)).status_code == 404
    async with runtime.sessions() as session:
        left = await session.scalar(select(func.count()).select_from(Workout))
        deliveries = await session.scalar(select(func.count()).select_from(Delivery))
    assert left == 0 and deliveries == 0


async def test_reauthenticate_must_be_the_same_user_and_sync_needs_a_live_account(
    api: Api,
) -> None:
    client, keys, runtime, state = api
    admin = bearer(keys.admin)
    first, other = user(state, 0), user(state, 1)
    created = await client.post(
        "/v1/accounts", json={"credentials": {"refresh_token": token(first)}}, headers=admin
    )
    account_id = created.json()["id"]
    wrong = await client.post(
        f"/v1/accounts/{account_id}/reauthenticate",
        json={"credentials": {"refresh_token": token(other)}},
        headers=admin,
    )
    assert wrong.status_code == 409
    right = await client.post(
        f"/v1/accounts/{account_id}/reauthenticate",
        json={"credentials": {"username": first["username"], "password": first["password"]}},
        headers=admin,
    )
    assert right.status_code == 200 and right.json()["auth_method"] == "password"
    missing = await client.post(
        "/v1/accounts/999/reauthenticate",
        json={"credentials": {"refresh_token": token(first)}},
        headers=admin,
    )
    assert missing.status_code == 404
    assert (await client.post("/v1/accounts/999/sync", headers=admin)).status_code == 404
    async with runtime.sessions() as session, session.begin():
        account = await session.get(Account, account_id)
        assert account is not None
        account.status = AccountStatus.NEEDS_REAUTH
    parked = await client.post(f"/v1/accounts/{account_id}/sync", headers=admin)
    assert parked.status_code == 409 and "re-authenticated" in parked.json()["detail"]
    shown = (await client.get(f"/v1/accounts/{account_id}", headers=admin)).json()
    assert shown["status"] == "needs_reauth" and shown["next_poll_at"] is None


async def test_imported_workouts_setting_and_the_origin_of_workouts(api: Api) -> None:
    client, keys, runtime, state = api
    admin = bearer(keys.admin)
    linked = await client.post(
        "/v1/accounts",
        json={
            "credentials": {"refresh_token": token(user(state))},
            "sync_since": "2001-01-01T00:00:00Z",
        },
        headers=admin,
    )
    account_id = linked.json()["id"]
    assert linked.json()["include_external"] is False  # off by default
    state.add_workouts(list(state.accounts.values())[0], kind="outdoor_just_run_garmin")
    await PollJob(runtime).run_once(account_id)
    workouts = (await client.get("/v1/workouts", headers=admin)).json()["items"]
    origins = sorted(str(w["origin"]) for w in workouts)
    assert origins == ["None"] * (len(workouts) - 1) + ["garmin"]
    imported = next(w for w in workouts if w["origin"] == "garmin")
    assert imported["status"] == "no_deliveries"

    on = await client.patch(
        f"/v1/accounts/{account_id}", json={"include_external": True}, headers=admin
    )
    assert on.status_code == 200 and on.json()["include_external"] is True
    assert (await client.get(f"/v1/accounts/{account_id}", headers=admin)).json()[
        "include_external"
    ]
    null = await client.patch(
        f"/v1/accounts/{account_id}", json={"include_external": None}, headers=admin
    )
    assert null.status_code == 422
    assert "include_external" in null.text
    wrong = await client.patch(
        f"/v1/accounts/{account_id}", json={"include_external": "maybe"}, headers=admin
    )
    assert wrong.status_code == 422
    async with runtime.sessions() as session:
        stored = await session.get(Account, account_id)
        assert stored is not None and stored.include_external
