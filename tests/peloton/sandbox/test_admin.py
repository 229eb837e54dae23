"""The admin API: users and tokens, error injection, latency, the request log, reset."""

from __future__ import annotations

import json

import httpx
import pytest

from service.peloton.sandbox import SandboxState
from tests.peloton.sandbox.helpers import login, user_id


async def test_create_user_then_link_it_by_refresh_token(http: httpx.AsyncClient) -> None:
    created = await http.post(
        "/_sandbox/users",
        json={
            "username": "demo",
            "password": "s3cret",
            "units": "metric",
            "timezone": "Europe/Berlin",
            "workouts": 3,
        },
    )
    assert created.status_code == 201
    user = created.json()
    assert (user["username"], user["password"], user["units"], user["timezone"]) == (
        "demo",
        "s3cret",
        "metric",
        "Europe/Berlin",
    )
    listed = {u["username"]: u for u in (await http.get("/_sandbox/users")).json()}
    assert listed["demo"]["refresh_tokens"] == user["refresh_tokens"]
    token = user["refresh_tokens"][0]
    answer = await http.post(
        "/oauth/token",
        json={
            "grant_type": "refresh_token",
            "client_id": token["client_id"],
            "refresh_token": token["token"],
        },
    )
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    me = (await http.get("/api/me", headers=headers)).json()
    assert (me["id"], me["total_workouts"]) == (user["user_id"], 3)
    settings = (await http.get(f"/api/user/{me['id']}/settings", headers=headers)).json()
    assert settings["distance_unit"] == "metric"
    taken = await http.post("/_sandbox/users", json={"username": "DEMO"})
    assert taken.status_code == 409
    bad = await http.post("/_sandbox/users", json={"timezone": "Mars/Olympus"})
    assert bad.status_code == 422
    assert "Mars/Olympus" in bad.json()["detail"]


async def test_issue_and_revoke_tokens(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    uid = user_id(sandbox_state)
    issued = (await http.post(f"/_sandbox/users/{uid}/tokens", json={})).json()
    headers = {"Authorization": f"Bearer {issued['access_token']}"}
    assert (await http.get("/api/me", headers=headers)).status_code == 200
    assert (await http.post(f"/_sandbox/users/{uid}/revoke")).json()["revoked"] >= 3
    assert (await http.get("/api/me", headers=headers)).status_code == 401
    refresh = await http.post(
        "/oauth/token",
        json={
            "grant_type": "refresh_token",
            "client_id": sandbox_state.config.web_client_id,
            "refresh_token": issued["refresh_token"],
        },
    )
    assert refresh.json()["error"] == "invalid_grant"
    assert (await http.post("/_sandbox/users/nobody/revoke")).status_code == 404


async def test_expire_all_tokens(http: httpx.AsyncClient, sandbox_state: SandboxState) -> None:
    headers = await login(http, sandbox_state)
    assert (await http.post("/_sandbox/tokens/expire")).json()["expired"] == 1
    assert (await http.get("/api/me", headers=headers)).status_code == 401
    headers = await login(http, sandbox_state)  # the refresh token still works
    assert (await http.get("/api/me", headers=headers)).status_code == 200


async def _arm(http: httpx.AsyncClient, **fault: object) -> dict[str, object]:
    answer = await http.post("/_sandbox/faults", json=fault)
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


async def test_rate_limit_fault_for_the_next_n_requests(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    headers = await login(http, sandbox_state)
    await _arm(http, kind="rate_limit", count=2, retry_after=120, path_prefix="/api/")
    for _ in range(2):
        limited = await http.get("/api/me", headers=headers)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "120"
    assert (await http.get("/api/me", headers=headers)).status_code == 200
    assert (await http.get("/_sandbox/faults")).json() == []


async def test_faults_respect_the_path_prefix(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    await _arm(http, kind="server_error", status=500, path_prefix="/api/workout")
    headers = await login(http, sandbox_state)  # /oauth/token is not affected
    assert (await http.get("/api/me", headers=headers)).status_code == 200
    wid = sandbox_state.workouts(next(iter(sandbox_state.accounts.values())))[0].workout_id
    failed = await http.get(f"/api/workout/{wid}", headers=headers)
    assert failed.status_code == 500
    assert failed.json()["status"] == 500


@pytest.mark.parametrize("status", [502, 503])
async def test_gateway_errors_answer_html(
    http: httpx.AsyncClient, sandbox_state: SandboxState, status: int
) -> None:
    headers = await login(http, sandbox_state)
    await _arm(http, kind="server_error", status=status)
    answer = await http.get("/api/me", headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert str(status) in answer.text


async def test_cloudflare_fault(http: httpx.AsyncClient) -> None:
    await _arm(http, kind="cloudflare", path_prefix="/oauth/token")
    answer = await http.post("/oauth/token", json={"grant_type": "password"})
    assert answer.status_code == 403
    assert answer.text == "error code: 1015"
    assert answer.headers["server"] == "cloudflare"


async def test_403_faults_look_like_what_they_stand_for(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    headers = await login(http, sandbox_state)
    for kind in (
        "cloudflare_json",
        "cloudflare_challenge",
        "forbidden",
        "forbidden_garbled",
        "forbidden_empty",
    ):
        await _arm(http, kind=kind, path_prefix="/api/me", retry_after=30)
    answers = [await http.get("/api/me", headers=headers) for _ in range(5)]
    assert [a.status_code for a in answers] == [403] * 5
    problem, challenge, refusal, garbled, empty = answers
    # Cloudflare's JSON problem for error 1015 (to clients accepting JSON), with Retry-After.
    assert problem.json()["error_code"] == 1015 and problem.json()["ray_id"]
    assert problem.headers["retry-after"] == "30" and problem.headers["server"] == "cloudflare"
    # A page from Cloudflare's edge, without an error code.
    assert "cf-ray" in challenge.headers and "error code" not in challenge.text
    assert challenge.headers["content-type"].startswith("text/html")
    # Peloton's own refusal, passed on by Cloudflare; what another user's data answers too.
    other = await http.get(f"/api/user/{'0' * 32}/workouts", headers=headers)
    assert refusal.json() == other.json() and other.status_code == 403
    assert refusal.headers["server"] == "cloudflare"
    # No marks of either: cut in half, or nothing at all.
    assert garbled.content and json.dumps(refusal.json()).startswith(garbled.text)
    with pytest.raises(json.JSONDecodeError):
        json.loads(garbled.content)
    assert empty.content == b""
    for unmarked in (garbled, empty):
        assert "cf-ray" not in unmarked.headers and "retry-after" not in unmarked.headers
        assert unmarked.headers.get("server", "") != "cloudflare"
    assert (await http.get("/api/me", headers=headers)).status_code == 200


async def test_malformed_and_empty_bodies(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    headers = await login(http, sandbox_state)
    whole = (await http.get("/api/me", headers=headers)).content
    await _arm(http, kind="malformed_json")
    cut = await http.get("/api/me", headers=headers)
    assert cut.status_code == 200
    assert cut.headers["content-type"] == "application/json"
    assert whole.startswith(cut.content)
    assert 0 < len(cut.content) < len(whole)
    with pytest.raises(json.JSONDecodeError):
        cut.json()
    await _arm(http, kind="empty_body")
    empty = await http.get("/api/me", headers=headers)
    assert (empty.status_code, empty.content) == (200, b"")


async def test_expire_tokens_fault(http: httpx.AsyncClient, sandbox_state: SandboxState) -> None:
    headers = await login(http, sandbox_state)
    await _arm(http, kind="expire_tokens")
    assert (await http.get("/api/me", headers=headers)).status_code == 401
    assert (await http.get("/api/me", headers=headers)).status_code == 401  # stays expired


async def test_timeout_fault_outlasts_the_client(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    headers = await login(http, sandbox_state)
    await _arm(http, kind="timeout", delay_s=30)
    with pytest.raises(httpx.ReadTimeout):
        await http.get("/api/me", headers=headers, timeout=0.2)
    assert (await http.get("/api/me", headers=headers)).status_code == 200


async def test_fraction_faults_hit_some_requests(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    headers = await login(http, sandbox_state)
    fault = await _arm(http, kind="server_error", fraction=0.5)
    statuses = [(await http.get("/api/me", headers=headers)).status_code for _ in range(40)]
    assert set(statuses) == {200, 503}
    listed = (await http.get("/_sandbox/faults")).json()
    assert listed[0]["hits"] == statuses.count(503)
    assert (await http.delete(f"/_sandbox/faults/{fault['id']}")).json() == {"removed": 1}
    assert (await http.get("/api/me", headers=headers)).status_code == 200


async def test_bad_fault_is_refused(http: httpx.AsyncClient) -> None:
    for body in (
        {"kind": "meteor"},
        {"kind": "timeout", "fraction": 2},
        {"kind": "server_error", "status": 404},
    ):
        assert (await http.post("/_sandbox/faults", json=body)).status_code == 422


async def test_latency_is_applied_and_logged(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    assert (await http.put("/_sandbox/latency", json={"ms": 120})).json() == {"ms": 120}
    assert (await http.get("/_sandbox/latency")).json() == {"ms": 120}
    headers = await login(http, sandbox_state)
    await http.get("/api/me", headers=headers)
    entries = (await http.get("/_sandbox/requests")).json()
    assert [e["path"] for e in entries] == ["/oauth/token", "/api/me"]
    # A sleep never ends early: each logged request took at least the added latency.
    assert all(e["duration_ms"] >= 119 for e in entries)
    assert (await http.put("/_sandbox/latency", json={"ms": -1})).status_code == 422


async def test_request_log_counters_and_reset(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    headers = await login(http, sandbox_state)
    wid = sandbox_state.workouts(next(iter(sandbox_state.accounts.values())))[0].workout_id
    await http.get(f"/api/workout/{wid}", headers=headers)
    await http.get(f"/api/workout/{wid}/performance_graph?every_n=5", headers=headers)
    await http.get("/api/me")
    await _arm(http, kind="rate_limit")
    await http.get("/api/me", headers=headers)
    counters = (await http.get("/_sandbox/counters")).json()
    assert counters["requests"] == 5
    assert counters["by_status"] == {"200": 3, "401": 1, "429": 1}
    assert counters["by_route"]["GET /api/workout/{workout_id}"] == 1
    assert counters["by_route"]["GET /api/me"] == 2
    assert counters["by_fault"] == {"rate_limit": 1}
    log = (await http.get("/_sandbox/requests", params={"limit": 2})).json()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("GET", "/api/me", 401),
        ("GET", "/api/me", 429),
    ]
    assert log[1]["fault"] == "rate_limit"
    assert {"time", "duration_ms", "query"} <= set(log[0])
    graph_entry = (await http.get("/_sandbox/requests")).json()[2]
    assert graph_entry["query"] == "every_n=5"

    await _arm(http, kind="cloudflare", count=5)
    await http.put("/_sandbox/latency", json={"ms": 50})
    assert (await http.post("/_sandbox/reset")).json() == {"reset": True, "data": False}
    assert (await http.get("/_sandbox/counters")).json()["requests"] == 0
    assert (await http.get("/_sandbox/faults")).json() == []
    assert (await http.get("/_sandbox/latency")).json() == {"ms": 0}
    assert (await http.get("/api/me", headers=headers)).status_code == 200  # tokens survive


async def test_reset_with_data_rebuilds_users(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    before = (await http.get("/_sandbox/users")).json()
    await http.post("/_sandbox/users", json={"username": "extra"})
    await login(http, sandbox_state)
    await http.post("/_sandbox/reset", json={"data": True})
    after = (await http.get("/_sandbox/users")).json()
    assert after == before  # same seed: same users, same initial refresh tokens


async def test_admin_overview_and_unknown_things(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    overview = (await http.get("/_sandbox/")).json()
    assert overview["users"] == 2
    assert "outdoor_run" in overview["kinds"]
    assert (await http.post("/_sandbox/workouts/nope/complete")).status_code == 404
    uid = user_id(sandbox_state)
    bad_kind = await http.post(f"/_sandbox/users/{uid}/workouts", json={"kind": "skydiving"})
    assert bad_kind.status_code == 422
    assert "skydiving" in bad_kind.json()["detail"]
    rows = (await http.get(f"/_sandbox/users/{uid}/workouts")).json()
    assert len(rows) == 12
