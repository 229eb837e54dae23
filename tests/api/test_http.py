"""The HTTP layer: problem details, size limits, request ids, access logs, metrics."""

from __future__ import annotations

import httpx
import pytest
import structlog

from service.logging import configure_logging
from service.peloton.sandbox import SandboxState
from service.runtime import Runtime
from service.workouts import service as workouts_service
from tests.api.conftest import Keys, bearer

Api = tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]


async def test_bodies_over_the_limit_are_refused_before_being_read(api: Api) -> None:
    client, keys, runtime, _ = api
    limit = runtime.settings.api_max_body_bytes
    admin = bearer(keys.admin)
    big = b'{"name": "' + b"x" * limit + b'"}'
    declared = await client.post(
        "/v1/api-keys", content=big, headers={**admin, "content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"
    assert declared.json()["title"] == "Content too large"

    async def chunks() -> object:
        for _ in range(3):
            yield b"x" * (limit // 2)

    streamed = await client.post(
        "/v1/api-keys", content=chunks(), headers={**admin, "content-type": "application/json"}
    )
    assert streamed.status_code == 413
    small = await client.post("/v1/api-keys", json={"name": "ok"}, headers=admin)
    assert small.status_code == 201


async def test_problem_details_for_every_error_and_no_traceback(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, keys, _, _ = api
    admin = bearer(keys.admin)
    unknown = await client.get("/v1/nothing-here", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["status"] == 404
    method = await client.put("/v1/accounts", headers=admin)
    assert method.status_code == 405 and method.json()["title"] == "Method not allowed"
    invalid = await client.post("/v1/api-keys", json={"name": "", "role": "root"}, headers=admin)
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["errors"]} == {"name", "role"}
    not_json = await client.post(
        "/v1/api-keys", content=b"{", headers={**admin, "content-type": "application/json"}
    )
    assert not_json.status_code == 422

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("internal detail /srv/secret/path")

    monkeypatch.setattr(workouts_service, "page", broken)
    transport = httpx.ASGITransport(app=client._transport.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    with structlog.testing.capture_logs() as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
            crashed = await raw.get("/v1/workouts", headers=admin)
    assert any(e["event"] == "api.unhandled_error" for e in logs)  # the server log has it
    assert crashed.status_code == 500
    assert crashed.json() == {
        "type": "about:blank",
        "title": "Internal error",
        "status": 500,
        "detail": "an unexpected error occurred; see the server log",
    }
    assert "Traceback" not in crashed.text and "/srv/secret" not in crashed.text


async def test_request_ids_and_the_access_log(api: Api) -> None:
    client, keys, _, _ = api
    with structlog.testing.capture_logs([structlog.contextvars.merge_contextvars]) as logs:
        given = await client.get(
            "/v1/workouts?cursor=&limit=5",
            headers={**bearer(keys.admin), "X-Request-ID": "abc-123"},
        )
        made = await client.get("/healthz")
        hostile = await client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "bad id\nwith newline"
    access = [e for e in logs if e["event"] == "http.request"]
    assert access[0]["request_id"] == "abc-123"
    assert access[0]["route"] == "/v1/workouts" and access[0]["path"] == "/v1/workouts"
    assert access[0]["key_id"] == 1 and access[1]["key_id"] is None
    assert all("?" not in e["path"] for e in access)  # never the query string
    assert access[1]["status"] == 200 and access[1]["method"] == "GET"
    assert keys.admin not in repr(logs)


async def test_metrics_in_prometheus_format(api: Api) -> None:
    client, keys, _, _ = api
    await client.get("/v1/accounts", headers=bearer(keys.read_only))
    response = await client.get("/metrics", headers=bearer(keys.read_only))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        'pelosync_queue_depth{queue="deliveries"} 0.0',
        'pelosync_lease_reclaims_total{what="accounts"} 0.0',
        "# TYPE pelosync_polls_total counter",
        "# TYPE pelosync_peloton_errors_total counter",
        "# TYPE pelosync_delivery_attempt_duration_seconds histogram",
        'pelosync_http_requests_total{method="GET",route="/v1/accounts",status="200"}',
    ):
        assert name in text, name


def test_logged_tracebacks_never_show_local_variables(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "console")
    password = "hunter2-" + "s3cr3t"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger("test").exception("api.unhandled_error", tried=len(password))
    logged = capsys.readouterr().err
    assert "RuntimeError" in logged and "boom" in logged
    assert password not in logged
