"""The API routes over loopback HTTP: user, settings, paging, workouts, graphs, ride details."""

from __future__ import annotations

import re

import httpx
import pytest

from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from tests.peloton.sandbox.helpers import login, user_id


async def test_me_and_settings(http: httpx.AsyncClient, sandbox_state: SandboxState) -> None:
    headers = await login(http, sandbox_state)
    account = next(iter(sandbox_state.accounts.values()))
    me = (await http.get("/api/me", headers=headers)).json()
    assert me["id"] == account.user.user_id
    assert re.fullmatch(r"[0-9a-f]{32}", me["id"])
    assert me["username"] == account.user.username
    assert me["total_workouts"] == 12
    assert sum(c["count"] for c in me["workout_counts"]) == 12
    settings = (await http.get(f"/api/user/{me['id']}/settings", headers=headers)).json()
    assert settings["distance_unit"] == account.user.units
    assert settings["timezone"] == account.user.timezone


async def test_requests_without_a_valid_token_are_refused(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    workout = sandbox_state.workouts(next(iter(sandbox_state.accounts.values())))[0]
    paths = [
        "/api/me",
        f"/api/workout/{workout.workout_id}",
        f"/api/user/{user_id(sandbox_state)}/workouts",
    ]
    for path in paths:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
            answer = await http.get(path, headers=headers)
            assert answer.status_code == 401, (path, headers)
            assert answer.json() == {
                "status": 401,
                "error_code": 3010,
                "subcode": None,
                "message": "Login required",
                "details": None,
            }


async def test_users_only_see_their_own_data(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    headers = await login(http, sandbox_state, 0)
    other = list(sandbox_state.accounts.values())[1]
    other_workout = sandbox_state.workouts(other)[0].workout_id
    assert (
        await http.get(f"/api/user/{other.user.user_id}/workouts", headers=headers)
    ).status_code == 403
    assert (
        await http.get(f"/api/user/{other.user.user_id}/settings", headers=headers)
    ).status_code == 403
    assert (await http.get(f"/api/workout/{other_workout}", headers=headers)).status_code == 404
    graph = await http.get(f"/api/workout/{other_workout}/performance_graph", headers=headers)
    assert graph.status_code == 404
    assert graph.json()["status"] == 404


@pytest.mark.parametrize("count", [0, 1, 100, 101])
async def test_pagination(count: int) -> None:
    state = SandboxState(SandboxConfig(seed=3, users=1, workouts=count))
    async with run_sandbox(state) as url, httpx.AsyncClient(base_url=url) as http:
        headers = await login(http, state)
        uid = user_id(state)
        seen: list[str] = []
        page = 0
        while True:
            body = (
                await http.get(
                    f"/api/user/{uid}/workouts",
                    params={"limit": 100, "page": page, "sort_by": "-created", "joins": "ride"},
                    headers=headers,
                )
            ).json()
            assert body["limit"] == 100
            assert body["page"] == page
            assert body["total"] == count
            assert body["count"] == len(body["data"]) <= 100
            assert body["page_count"] == -(-count // 100)
            assert body["show_previous"] == (page > 0)
            assert body["sort_by"] == "-created_at,-pk"
            assert sum(body["summary"].values()) == count
            seen += [w["id"] for w in body["data"]]
            if body["data"]:
                assert body["data"][0]["ride"]["id"]
            if not body["show_next"]:
                assert body["next"] is None
                break
            assert body["next"]["workout_id"] == body["data"][-1]["id"]
            page += 1
        assert len(seen) == len(set(seen)) == count
        created = [w.created_at for w in state.workouts(next(iter(state.accounts.values())))]
        assert created == sorted(created, reverse=True)
        # A page past the end is empty, not an error.
        past = await http.get(
            f"/api/user/{uid}/workouts", params={"page": 5, "limit": 100}, headers=headers
        )
        assert past.json()["data"] == []
        assert past.json()["show_next"] is False


async def test_limit_is_capped_and_validated() -> None:
    state = SandboxState(SandboxConfig(seed=4, users=1, workouts=130))
    async with run_sandbox(state) as url, httpx.AsyncClient(base_url=url) as http:
        headers = await login(http, state)
        path = f"/api/user/{user_id(state)}/workouts"
        big = (await http.get(path, params={"limit": 500}, headers=headers)).json()
        assert big["limit"] == 100
        assert big["count"] == 100
        assert big["page_count"] == 2
        oldest_first = (
            await http.get(path, params={"limit": 3, "sort_by": "created"}, headers=headers)
        ).json()
        assert [w["created_at"] for w in oldest_first["data"]] == sorted(
            w["created_at"] for w in oldest_first["data"]
        )
        for bad in ({"limit": 0}, {"limit": "x"}, {"page": -1}, {"sort_by": "title"}):
            answer = await http.get(path, params=bad, headers=headers)
            assert answer.status_code == 400, bad
            assert answer.json()["status"] == 400


async def test_from_to_filter(http: httpx.AsyncClient, sandbox_state: SandboxState) -> None:
    headers = await login(http, sandbox_state)
    specs = sandbox_state.workouts(next(iter(sandbox_state.accounts.values())))
    pivot = specs[5].created_at
    from datetime import UTC, datetime

    since = datetime.fromtimestamp(pivot, tz=UTC).isoformat()
    body = (
        await http.get(
            f"/api/user/{user_id(sandbox_state)}/workouts",
            params={"from": since},
            headers=headers,
        )
    ).json()
    assert [w["id"] for w in body["data"]] == [s.workout_id for s in specs[:6]]


async def test_workout_detail_and_joins(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    headers = await login(http, sandbox_state)
    specs = sandbox_state.workouts(next(iter(sandbox_state.accounts.values())))
    spec = next(s for s in specs if s.ride.instructor is not None)
    path = f"/api/workout/{spec.workout_id}"
    full = (await http.get(path, params={"joins": "ride,ride.instructor"}, headers=headers)).json()
    assert full["id"] == spec.workout_id
    assert full["ride"]["instructor"]["name"] == spec.ride.instructor.name
    assert full["ride"]["id"] == spec.ride.ride_id
    assert 5 <= full["start_time"] - full["created_at"] <= 61
    assert full["end_time"] == full["start_time"] + full["ride"]["duration"]
    ride_only = (await http.get(path, params={"joins": "ride"}, headers=headers)).json()
    assert "instructor" not in ride_only["ride"]
    bare = (await http.get(path, headers=headers)).json()
    assert "ride" not in bare
    details = (await http.get(f"/api/ride/{spec.ride.ride_id}/details", headers=headers)).json()
    assert details["ride"]["id"] == spec.ride.ride_id
    segments = details["segments"]["segment_list"]
    assert sum(s["length"] for s in segments) == spec.ride.duration
    missing = await http.get("/api/ride/00000000000000000000000000000000/details", headers=headers)
    assert missing.status_code == 404


@pytest.mark.parametrize("every_n", [1, 2, 5, 30])
async def test_every_n_is_honoured(
    http: httpx.AsyncClient, sandbox_state: SandboxState, every_n: int
) -> None:
    headers = await login(http, sandbox_state)
    spec = sandbox_state.workouts(next(iter(sandbox_state.accounts.values())))[0]
    path = f"/api/workout/{spec.workout_id}/performance_graph"
    base = (await http.get(path, params={"every_n": 1}, headers=headers)).json()
    graph = (await http.get(path, params={"every_n": every_n}, headers=headers)).json()
    offsets = base["seconds_since_pedaling_start"]
    first = offsets[0]
    expected = [t for t in offsets if (t - first) % every_n == 0]
    assert graph["seconds_since_pedaling_start"] == expected
    assert all((b - a) % every_n == 0 for a, b in zip(expected, expected[1:], strict=False))
    index = {t: i for i, t in enumerate(offsets)}
    for metric, full in zip(graph["metrics"], base["metrics"], strict=True):
        assert len(metric["values"]) == len(expected)
        assert metric["values"] == [full["values"][index[t]] for t in expected]
        assert metric["max_value"] == full["max_value"]
    assert graph["summaries"] == base["summaries"]


async def test_every_n_validation(http: httpx.AsyncClient, sandbox_state: SandboxState) -> None:
    headers = await login(http, sandbox_state)
    spec = sandbox_state.workouts(next(iter(sandbox_state.accounts.values())))[0]
    path = f"/api/workout/{spec.workout_id}/performance_graph"
    for bad in ("0", "-3", "abc"):
        answer = await http.get(path, params={"every_n": bad}, headers=headers)
        assert answer.status_code == 400
    default = (await http.get(path, headers=headers)).json()["seconds_since_pedaling_start"]
    assert default[1] - default[0] == 5


async def test_same_seed_gives_the_same_json() -> None:
    bodies = []
    for _ in range(2):
        state = SandboxState(SandboxConfig(seed=11, users=1, workouts=5))
        async with run_sandbox(state) as url, httpx.AsyncClient(base_url=url) as http:
            headers = await login(http, state)
            uid = user_id(state)
            page = (
                await http.get(
                    f"/api/user/{uid}/workouts", params={"joins": "ride"}, headers=headers
                )
            ).text
            wid = state.workouts(state.accounts[uid])[0].workout_id
            graph = (
                await http.get(
                    f"/api/workout/{wid}/performance_graph", params={"every_n": 1}, headers=headers
                )
            ).text
            bodies.append((uid, page, graph))
    assert bodies[0] == bodies[1]
    other = SandboxState(SandboxConfig(seed=12, users=1, workouts=5))
    assert user_id(other) != bodies[0][0]


@pytest.mark.parametrize(
    ("units", "speed", "distance"), [("imperial", "mph", "mi"), ("metric", "kph", "km")]
)
async def test_units_follow_the_user(units: str, speed: str, distance: str) -> None:
    state = SandboxState(SandboxConfig(seed=5, users=0))
    account = state.add_user(units=units, workouts=0)  # type: ignore[arg-type]
    state.add_workouts(account, kind="cycling_class")
    state.add_workouts(account, kind="rowing")
    async with run_sandbox(state) as url, httpx.AsyncClient(base_url=url) as http:
        token = state.tokens.issue(
            account.user.user_id, state.config.web_client_id, "openid", issuer=url
        )
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        settings = (
            await http.get(f"/api/user/{account.user.user_id}/settings", headers=headers)
        ).json()
        assert settings["distance_unit"] == units
        row, ride = state.workouts(account)[:2]
        graph = (
            await http.get(
                f"/api/workout/{ride.workout_id}/performance_graph",
                params={"every_n": 1},
                headers=headers,
            )
        ).json()
        units_of = {m["slug"]: m["display_unit"] for m in graph["metrics"]}
        assert units_of["speed"] == speed
        assert {s["slug"]: s["display_unit"] for s in graph["summaries"]}["distance"] == distance
        rowed = (
            await http.get(
                f"/api/workout/{row.workout_id}/performance_graph",
                params={"every_n": 1},
                headers=headers,
            )
        ).json()
        assert {m["slug"]: m["display_unit"] for m in rowed["metrics"]}["split_pace"] == "min/500m"
        assert {s["slug"]: s["display_unit"] for s in rowed["summaries"]}["distance"] == "m"


async def test_in_progress_workouts_and_completion(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    headers = await login(http, sandbox_state)
    uid = user_id(sandbox_state)
    added = await http.post(
        f"/_sandbox/users/{uid}/workouts",
        json={"kind": "cycling_class", "in_progress": True, "duration": 1200, "elapsed": 300},
    )
    assert added.status_code == 201
    row = added.json()["workouts"][0]
    assert row["status"] == "IN_PROGRESS"
    first = (await http.get(f"/api/user/{uid}/workouts", headers=headers)).json()["data"][0]
    assert first["id"] == row["id"]
    assert first["status"] == "IN_PROGRESS"
    assert first["end_time"] is None
    graph = (
        await http.get(
            f"/api/workout/{row['id']}/performance_graph", params={"every_n": 1}, headers=headers
        )
    ).json()
    assert graph["duration"] == 300
    assert graph["seconds_since_pedaling_start"][-1] <= 300

    done = await http.post(f"/_sandbox/workouts/{row['id']}/complete")
    assert done.json()["status"] == "COMPLETE"
    detail = (await http.get(f"/api/workout/{row['id']}", headers=headers)).json()
    assert detail["status"] == "COMPLETE"
    assert detail["end_time"] == detail["start_time"] + 1200
    graph = (
        await http.get(
            f"/api/workout/{row['id']}/performance_graph", params={"every_n": 1}, headers=headers
        )
    ).json()
    assert graph["duration"] == 1200


async def test_in_progress_workout_completes_on_its_own(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    headers = await login(http, sandbox_state)
    uid = user_id(sandbox_state)
    added = await http.post(
        f"/_sandbox/users/{uid}/workouts",
        json={"kind": "tread_run", "in_progress": True, "complete_after_s": 600},
    )
    wid = added.json()["workouts"][0]["id"]
    assert (await http.get(f"/api/workout/{wid}", headers=headers)).json()[
        "status"
    ] == "IN_PROGRESS"
    await http.post("/_sandbox/clock", json={"advance_s": 601})
    assert (await http.get(f"/api/workout/{wid}", headers=headers)).json()["status"] == "COMPLETE"
