"""A Strava destination with its own Strava API application, on a service that has none, and
deleting a connected Strava destination revoking its access on Strava."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog

from service.app import create_app
from service.runtime import open_runtime
from tests.api.conftest import Keys, api_settings, bearer, key_setup, running
from tests.destinations.fakes import fake_strava
from tests.support.servers import serve

OWN_ID = "67890"
OWN_SECRET = "riders-own-strava-app-secret-0a1b2c"

Client = tuple[httpx.AsyncClient, Keys, fake_strava.FakeStrava]


@pytest.fixture
def strava() -> Iterator[tuple[str, fake_strava.FakeStrava]]:
    with serve("strava") as (url, switch):
        fake = fake_strava.FakeStrava()
        fake.add_app(OWN_ID, OWN_SECRET)
        switch.app = fake.app()
        yield url, fake


async def _client(
    tmp_path: Path, database_url: str, strava: tuple[str, fake_strava.FakeStrava], **app: Any
) -> AsyncIterator[Client]:
    url, fake = strava
    settings = api_settings(
        tmp_path,
        database_url,
        "http://127.0.0.1:9",
        strava_oauth_url=f"{url}/oauth",
        strava_api_url=f"{url}/api/v3",
        public_url="https://sync.example.com",
        **app,
    )
    found = Keys()
    async with open_runtime(settings) as rt:
        api = create_app(settings, scheduler=False, runtime=rt, on_started=key_setup(found))
        async with running(api) as client:
            yield client, found, fake


@pytest.fixture
async def no_shared_app(
    tmp_path: Path, database_url: str, strava: tuple[str, fake_strava.FakeStrava]
) -> AsyncIterator[Client]:
    """A service without PELOSYNC_STRAVA_* settings."""
    async for client in _client(tmp_path, database_url, strava):
        yield client


@pytest.fixture
async def shared_app(
    tmp_path: Path, database_url: str, strava: tuple[str, fake_strava.FakeStrava]
) -> AsyncIterator[Client]:
    async for client in _client(
        tmp_path,
        database_url,
        strava,
        strava_client_id=fake_strava.CLIENT_ID,
        strava_client_secret=fake_strava.CLIENT_SECRET,
    ):
        yield client


async def _create(client: httpx.AsyncClient, key: str, **body: Any) -> httpx.Response:
    return await client.post(
        "/v1/destinations", json={"name": "s", "kind": "strava", **body}, headers=bearer(key)
    )


async def _connect(client: httpx.AsyncClient, key: str, destination_id: int) -> httpx.Response:
    """The athlete follows the connect link through (the fake's) Strava back to the callback."""
    started = await client.get(
        f"/v1/destinations/{destination_id}/strava/connect", headers=bearer(key)
    )
    assert started.status_code == 307, started.text
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(started.headers["location"])
    if approved.status_code != 302:
        return approved
    query = parse_qs(urlsplit(approved.headers["location"]).query)
    params = {name: values[0] for name, values in query.items()}
    return await client.get("/v1/strava/callback", params=params)


async def test_own_application_on_a_service_without_one(no_shared_app: Client) -> None:
    client, keys, fake = no_shared_app
    admin = bearer(keys.admin)
    refused = await _create(client, keys.admin)
    assert refused.status_code == 422 and "config.client_id" in refused.json()["detail"]
    half = await _create(client, keys.admin, config={"client_id": OWN_ID})
    assert half.status_code == 422 and "secrets.client_secret" in half.json()["detail"]

    created = await _create(
        client, keys.admin, config={"client_id": OWN_ID}, secrets={"client_secret": OWN_SECRET}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["config"]["client_id"] == OWN_ID
    assert body["secrets"] == {"client_secret": "••••" + OWN_SECRET[-4:]}
    assert OWN_SECRET not in created.text

    fake.signed_in = dict(fake_strava.SECOND_ATHLETE)
    connected = await _connect(client, keys.admin, body["id"])
    assert connected.status_code == 200, connected.text
    assert connected.json()["athlete_id"] == fake_strava.SECOND_ATHLETE["id"]
    exchange = fake.token_requests[-1]
    assert (exchange["client_id"], exchange["client_secret"]) == (OWN_ID, OWN_SECRET)
    shown = (await client.get(f"/v1/destinations/{body['id']}", headers=admin)).json()
    # The application's secret stays beside the tokens: refreshes need it.
    assert {"client_secret", "access_token", "refresh_token"} <= set(shown["secrets"])
    ping = (await client.post(f"/v1/destinations/{body['id']}/test", headers=admin)).json()
    assert ping["ok"] is True, ping


async def test_second_rider_on_the_shared_application_and_then_on_their_own(
    shared_app: Client,
) -> None:
    client, keys, fake = shared_app
    admin = bearer(keys.admin)
    half = await _create(client, keys.admin, config={"client_id": OWN_ID})
    assert half.status_code == 422 and half.json()["detail"].startswith("secrets.client_secret:")
    tokens = await _create(client, keys.admin, secrets={"access_token": "abcdefgh12345678"})
    assert tokens.status_code == 422
    assert tokens.json()["detail"].startswith("secrets: a Strava destination gets its tokens")
    assert "client_secret" in tokens.json()["detail"]
    first = (await _create(client, keys.admin)).json()["id"]
    assert (await _connect(client, keys.admin, first)).status_code == 200
    second = (await _create(client, keys.admin)).json()["id"]
    fake.signed_in = dict(fake_strava.SECOND_ATHLETE)
    refused = await _connect(client, keys.admin, second)
    assert refused.status_code == 403 and "Limit of connected athletes" in refused.text
    own = await client.patch(
        f"/v1/destinations/{second}",
        json={"config": {"client_id": OWN_ID}, "secrets": {"client_secret": OWN_SECRET}},
        headers=admin,
    )
    assert own.status_code == 200, own.text
    connected = await _connect(client, keys.admin, second)
    assert connected.status_code == 200, connected.text
    assert fake.apps[OWN_ID].connected == {fake_strava.SECOND_ATHLETE["id"]}
    assert fake.apps[fake_strava.CLIENT_ID].connected == {fake_strava.ATHLETE["id"]}


async def test_deleting_revokes_the_access_on_strava(shared_app: Client) -> None:
    client, keys, fake = shared_app
    admin = bearer(keys.admin)
    destination_id = (await _create(client, keys.admin)).json()["id"]
    assert (await _connect(client, keys.admin, destination_id)).status_code == 200
    deleted = await client.delete(f"/v1/destinations/{destination_id}", headers=admin)
    assert deleted.status_code == 204
    assert fake.deauthorized == [fake_strava.ATHLETE["id"]]
    assert fake.access_tokens == {} and fake.apps[fake_strava.CLIENT_ID].connected == set()
    gone = await client.get(f"/v1/destinations/{destination_id}", headers=admin)
    assert gone.status_code == 404

    # Never connected: nothing to revoke. Strava unreachable: deleted all the same.
    never = (await _create(client, keys.admin)).json()["id"]
    assert (await client.delete(f"/v1/destinations/{never}", headers=admin)).status_code == 204
    assert fake.calls["POST /oauth/deauthorize"] == 1
    unreachable = (await _create(client, keys.admin)).json()["id"]
    assert (await _connect(client, keys.admin, unreachable)).status_code == 200
    fake.fault("POST", "/oauth/deauthorize", 503, {"message": "Service Unavailable"})
    with structlog.testing.capture_logs() as logs:
        deleted = await client.delete(f"/v1/destinations/{unreachable}", headers=admin)
    assert deleted.status_code == 204
    assert (await client.get(f"/v1/destinations/{unreachable}", headers=admin)).status_code == 404
    (failed,) = [entry for entry in logs if entry["event"] == "destinations.strava_revoke_failed"]
    assert failed["destination_id"] == unreachable and "HTTP 503" in failed["error"]
    assert fake.apps[fake_strava.CLIENT_ID].connected == {fake_strava.ATHLETE["id"]}
