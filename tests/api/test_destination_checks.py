"""Destinations that cannot work are refused when they are created or edited (422 naming the
field and the fix); what only shows later (a name resolving to a refused address) is reported
by ``test`` in one sentence."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.api.conftest import bearer
from tests.api.test_destinations import Api, create


def refused(response: httpx.Response, field: str, *words: str) -> str:
    """The problem's detail, after checking it is a 422 about ``field`` naming ``words``."""
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"] == [{"field": field, "message": problem["detail"]}]
    assert problem["detail"].startswith(f"{field}: ")
    for word in words:
        assert word in problem["detail"], problem["detail"]
    return str(problem["detail"])


async def count(client: httpx.AsyncClient, key: str) -> int:
    return len((await client.get("/v1/destinations", headers=bearer(key))).json()["items"])


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:9000/hook", ("a loopback address", "PELOSYNC_WEBHOOK_ALLOW_PRIVATE")),
        ("http://[::1]/hook", ("a loopback address", "PELOSYNC_WEBHOOK_ALLOWLIST")),
        ("https://10.1.2.3/hook", ("a private address", "PELOSYNC_WEBHOOK_ALLOW_PRIVATE")),
        ("http://169.254.169.254/latest", ("a cloud metadata address", "ALLOWLIST entry")),
    ],
)
async def test_a_webhook_to_a_refused_ip_address_is_refused(
    api: Api, url: str, words: tuple[str, ...]
) -> None:
    client, keys, runtime, _ = api
    runtime.settings.webhook_allow_private = False  # the default
    body: dict[str, Any] = {"name": "h", "kind": "webhook", "config": {"url": url}}
    refused(await create(client, keys.admin, **body), "config.url", *words)
    assert await count(client, keys.admin) == 0


async def test_allowed_private_addresses_and_edits_to_refused_ones(api: Api) -> None:
    client, keys, runtime, _ = api
    runtime.settings.webhook_allow_private = False
    runtime.settings.webhook_allowlist = "10.0.0.0/8"
    allowed = await create(
        client, keys.admin, name="nas", kind="webhook", config={"url": "http://10.1.2.3/h"}
    )
    assert allowed.status_code == 201, allowed.text
    destination_id = allowed.json()["id"]
    # An edit to an address the guard refuses is refused too, and changes nothing.
    edit = await client.patch(
        f"/v1/destinations/{destination_id}",
        json={"config": {"url": "http://192.168.1.20/h"}, "name": "renamed"},
        headers=bearer(keys.admin),
    )
    refused(edit, "config.url", "192.168.1.20 is a private address")
    shown = await client.get(f"/v1/destinations/{destination_id}", headers=bearer(keys.admin))
    assert shown.json()["config"]["url"] == "http://10.1.2.3/h"
    assert shown.json()["name"] == "nas"


async def test_a_name_resolving_to_a_refused_address_is_reported_by_test(api: Api) -> None:
    client, keys, runtime, _ = api
    runtime.settings.webhook_allow_private = False
    # Its addresses are only known when it is resolved, before each delivery: accepted...
    created = await create(
        client, keys.admin, name="h", kind="webhook", config={"url": "http://localhost:9/h"}
    )
    assert created.status_code == 201, created.text
    # ...and `test` says, in one sentence, why nothing can be delivered to it.
    result = await client.post(
        f"/v1/destinations/{created.json()['id']}/test", headers=bearer(keys.admin)
    )
    assert result.status_code == 200
    tested = result.json()
    assert tested["ok"] is False and tested["status_code"] is None
    error = tested["error"]
    assert error.startswith("localhost resolves to ") and "a loopback address" in error
    assert "PELOSYNC_WEBHOOK_ALLOW_PRIVATE" in error
    assert "\n" not in error and error.count(". ") == 0


async def test_services_not_set_up_and_missing_credentials_are_refused(api: Api) -> None:
    client, keys, runtime, _ = api
    key = keys.admin
    strava = await create(client, key, name="s", kind="strava", formats=["fit"])
    refused(strava, "kind", "PELOSYNC_STRAVA_CLIENT_ID", "PELOSYNC_STRAVA_CLIENT_SECRET")
    garmin = await create(client, key, name="g", kind="garmin", secrets={"access_token": "eyJ.a.b"})
    refused(garmin, "kind", "PELOSYNC_GARMIN_ENABLED=true")
    intervals = await create(client, key, name="i", kind="intervals", config={"athlete_id": "0"})
    refused(intervals, "secrets", "give an api_key or an access_token")
    runtime.settings.garmin_enabled = True
    no_token = await create(client, key, name="g", kind="garmin", secrets={"client_id": "c"})
    refused(no_token, "secrets.access_token")
    json_to_intervals = await create(
        client, key, name="i", kind="intervals", formats=["json"], secrets={"api_key": "k" * 20}
    )
    refused(json_to_intervals, "formats", "take fit, tcx, gpx, not json")
    assert await count(client, key) == 0

    runtime.settings.strava_client_id = "4242"
    runtime.settings.strava_client_secret = SecretStr("app-secret")
    assert (await create(client, key, name="s", kind="strava")).status_code == 201
