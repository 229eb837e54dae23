"""While Peloton throttles us: sync now and linking say so, /readyz and /metrics show it."""

from __future__ import annotations

import httpx

from service.peloton.sandbox import SandboxState
from service.runtime import Runtime
from tests.api.conftest import Keys, bearer
from tests.api.test_accounts import token, user

Api = tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]


async def test_sync_now_and_linking_answer_peloton_is_throttling_us(api: Api) -> None:
    client, keys, runtime, state = api
    admin = bearer(keys.admin)
    linked = await client.post(
        "/v1/accounts", headers=admin, json={"credentials": {"refresh_token": token(user(state))}}
    )
    assert linked.status_code == 201, linked.text
    before = state.log.total

    await runtime.budget.throttled(120, "GET /api/user/x/workouts page 0")

    synced = await client.post(f"/v1/accounts/{linked.json()['id']}/sync", headers=admin)
    assert synced.status_code == 503
    assert synced.headers["content-type"].startswith("application/problem+json")
    assert synced.json()["detail"].startswith("Peloton is throttling us, retry at ")
    assert 110 <= int(synced.headers["retry-after"]) <= 120
    second = await client.post(
        "/v1/accounts",
        headers=admin,
        json={"credentials": {"refresh_token": token(user(state, 1))}},
    )
    assert second.status_code == 503
    assert second.json()["detail"].startswith("Peloton is throttling us, retry at ")
    assert state.log.total == before  # nothing was sent to Peloton

    ready = await client.get("/readyz")
    assert ready.status_code == 200  # every replica is paused alike: none is unready
    body = ready.json()
    assert body["checks"]["peloton"].startswith("throttled: requests paused until ")
    budget = body["details"]["peloton_budget"]
    assert budget["paused_until"] and budget["throttles"] == 1 and budget["egress"] == "default"
    assert budget["requests"]["interactive"] >= 1  # the first link's /api/me

    metrics = (await client.get("/metrics", headers=bearer(keys.read_only))).text
    assert 'pelosync_peloton_paused{egress="default"} 1.0' in metrics
    assert 'pelosync_peloton_throttles_total{egress="default"} 1.0' in metrics
    assert 'pelosync_peloton_requests_total{egress="default",priority="interactive"}' in metrics
    assert 'pelosync_peloton_budget_rps{egress="default"} 1000.0' in metrics
