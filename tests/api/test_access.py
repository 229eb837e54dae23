"""Every route refuses a missing, wrong, revoked or (for changes) read-only API key, and a
read-only key reads everything but the key list."""

from __future__ import annotations

import re

import httpx
import pytest

from service.app import create_app
from service.runtime import Runtime
from tests.api.conftest import Keys, bearer

# Authenticated another way: Strava's redirect (signed state) and signed download links.
KEYLESS = {"/v1/strava/callback", "/v1/files/workouts/{workout_id}/{format}"}
PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Reads that hand out something a read-only key must not have: keys, or a Strava
# authorization whose finisher chooses where workouts go.
ADMIN_ONLY_READS = {"/v1/api-keys", "/v1/destinations/1/strava/connect"}


def protected_routes() -> list[tuple[str, str]]:
    """Every operation in the OpenAPI document but the public and key-less ones."""
    schema = create_app(migrate=False, scheduler=False).openapi()
    found = []
    for template, operations in schema["paths"].items():
        if template in KEYLESS | PUBLIC:
            continue
        path = re.sub(r"\{[a-z_]+\}", "1", template.replace("{format}", "fit"))
        found += [(method.upper(), path) for method in sorted(operations)]
    return found


ROUTES = protected_routes()


def test_every_api_route_is_checked() -> None:
    paths = {path for _, path in ROUTES}
    assert "/metrics" in paths
    assert len(ROUTES) >= 28
    assert all(p.startswith("/v1/") or p == "/metrics" for p in paths)


def test_the_document_lists_every_section_in_reading_order() -> None:
    schema = create_app(migrate=False, scheduler=False).openapi()
    operations = [op for path in schema["paths"].values() for op in path.values()]
    used = {tag for op in operations for tag in op["tags"]}
    declared = [tag["name"] for tag in schema["tags"]]
    assert set(declared) == used
    assert declared[:4] == ["accounts", "destinations", "workouts", "deliveries"]


async def test_keys_are_required_and_roles_enforced(
    api: tuple[httpx.AsyncClient, Keys, Runtime, object],
) -> None:
    client, keys, _, _ = api
    for method, path in ROUTES:
        for headers in ({}, bearer("psk_" + "x" * 43), {"Authorization": "Basic dXNlcjpwdw=="}):
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Bearer")
        response = await client.request(method, path, headers=bearer(keys.read_only))
        if method == "GET" and path not in ADMIN_ONLY_READS:
            assert response.status_code not in (401, 403), (method, path, response.text)
        else:
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["title"] == "Forbidden"
        response = await client.request(method, path, headers=bearer(keys.admin))
        assert response.status_code not in (401, 403), (method, path, response.text)


async def test_revoked_keys_stop_working_and_the_last_admin_key_stays(
    api: tuple[httpx.AsyncClient, Keys, Runtime, object],
) -> None:
    client, keys, _, _ = api
    admin = bearer(keys.admin)
    created = await client.post("/v1/api-keys", json={"name": "ci", "role": "admin"}, headers=admin)
    assert created.status_code == 201
    new = created.json()
    assert new["key"].startswith(new["prefix"]) and new["role"] == "admin"
    listed = (await client.get("/v1/api-keys", headers=admin)).json()
    assert [k["name"] for k in listed] == ["first admin key", "dashboard", "ci"]
    assert all("key" not in k for k in listed)
    assert listed[0]["last_used_at"] is not None
    assert (await client.get("/v1/accounts", headers=bearer(new["key"]))).status_code == 200

    revoked = await client.delete(f"/v1/api-keys/{new['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await client.get("/v1/accounts", headers=bearer(new["key"]))).status_code == 401
    # The first key is now the only admin key: it cannot be revoked (nobody could get in).
    first = listed[0]["id"]
    refused = await client.delete(f"/v1/api-keys/{first}", headers=admin)
    assert refused.status_code == 409
    assert (await client.delete("/v1/api-keys/999", headers=admin)).status_code == 404


@pytest.mark.parametrize("path", sorted(PUBLIC - {"/docs/oauth2-redirect", "/redoc"}))
async def test_health_and_docs_need_no_key(
    api: tuple[httpx.AsyncClient, Keys, Runtime, object], path: str
) -> None:
    client, _, _, _ = api
    response = await client.get(path)
    assert response.status_code in (200, 503)  # /readyz: no scheduler heartbeat is fine here
