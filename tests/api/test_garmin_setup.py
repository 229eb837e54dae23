"""Setting up a Garmin destination through ``/v1/destinations``: a service ticket traded for
tokens, python-garminconnect's token file, and what is refused (against the loopback fake)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from service.destinations.models import Destination
from service.peloton.sandbox import SandboxState
from service.runtime import Runtime
from tests.api.conftest import Keys, bearer
from tests.destinations.fakes.fake_garmin import CLIENT_ID, REFRESH_TTL_S, FakeGarmin
from tests.support.servers import Switch, serve


@pytest.fixture(scope="module")
def garmin_server() -> Iterator[tuple[str, Switch]]:
    with serve("garmin-api") as served:
        yield served


Api = tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]
Garmin = tuple[httpx.AsyncClient, str, Runtime, FakeGarmin]


@pytest.fixture
def garmin(api: Api, garmin_server: tuple[str, Switch]) -> Garmin:
    client, keys, runtime, _ = api
    fake = FakeGarmin(now=lambda: runtime.clock().timestamp())
    garmin_server[1].app = fake.app()
    runtime.settings.garmin_enabled = True
    runtime.settings.garmin_token_url = f"{garmin_server[0]}/di-oauth2-service/oauth/token"
    return client, keys.admin, runtime, fake


async def _create(client: httpx.AsyncClient, key: str, secrets: dict[str, Any]) -> httpx.Response:
    body = {"name": "Garmin", "kind": "garmin", "secrets": secrets}
    return await client.post("/v1/destinations", json=body, headers=bearer(key))


async def _stored(runtime: Runtime, destination_id: int) -> dict[str, Any]:
    async with runtime.sessions() as session:
        row = await session.get(Destination, destination_id)
        assert row is not None
        return runtime.secrets.decrypt_json(row.secrets_encrypted)


async def test_a_service_ticket_is_traded_and_never_stored(
    garmin: Garmin,
) -> None:
    client, key, runtime, fake = garmin
    ticket = fake.sign_in()
    created = await _create(client, key, {"service_ticket": ticket})
    assert created.status_code == 201, created.text
    assert ticket not in created.text
    shown = created.json()["secrets"]
    assert set(shown) == {
        "access_token",
        "refresh_token",
        "client_id",
        "expires_at",
        "refresh_token_expires_at",
    }
    assert shown["access_token"].startswith("••••")
    now = int(runtime.clock().timestamp())
    assert shown["refresh_token_expires_at"] == now + REFRESH_TTL_S  # a date, not a secret
    stored = await _stored(runtime, created.json()["id"])
    assert "service_ticket" not in stored and stored["access_token"] in fake.access_tokens
    assert stored["client_id"] == CLIENT_ID
    assert ticket not in fake.tickets  # used up


async def test_a_refused_ticket_names_the_field(
    garmin: Garmin,
) -> None:
    client, key, _, fake = garmin
    refused = await _create(client, key, {"service_ticket": "ST-0000000-not-issued-sso"})
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["detail"].startswith("secrets.service_ticket: Garmin refused the service ticket")
    shaped = await _create(client, key, {"service_ticket": '"ST-123"'})  # copied with quotes
    assert shaped.json()["detail"].startswith("secrets.service_ticket: a service ticket starts")
    both = await _create(client, key, {"service_ticket": fake.sign_in(), "token_file": "{}"})
    assert both.json()["detail"] == "secrets: give a service_ticket or a token_file, not both"
    assert fake.calls["token"] == 4  # the refused ticket, once per client id; no other call


async def test_garmin_down_is_a_502(
    garmin: Garmin,
) -> None:
    client, key, _, fake = garmin
    fake.fault("POST", "/di-oauth2-service", 503, {"error": "unavailable"})
    down = await _create(client, key, {"service_ticket": fake.sign_in()})
    assert down.status_code == 502, down.text
    assert "Garmin could not trade the service ticket" in down.json()["detail"]
    listed = await client.get("/v1/destinations", headers=bearer(key))
    assert listed.json()["items"] == []  # nothing was created


async def test_a_token_file_is_read_and_checked(
    garmin: Garmin,
) -> None:
    client, key, runtime, fake = garmin
    text = fake.token_file()
    created = await _create(client, key, {"token_file": text})
    assert created.status_code == 201, created.text
    stored = await _stored(runtime, created.json()["id"])
    assert stored["access_token"] == json.loads(text)["di_token"]
    assert "token_file" not in stored and fake.calls["token"] == 0  # read, not sent anywhere
    as_object = await _create(client, key, {"token_file": json.loads(fake.token_file())})
    assert as_object.status_code == 201, as_object.text
    cookie_only = json.dumps({"di_token": None, "di_refresh_token": None, "di_client_id": None})
    refused = await _create(client, key, {"token_file": cookie_only})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith(
        "secrets.token_file: no di_token: this file came from the cookie login fallback"
    )


async def test_a_new_ticket_replaces_the_tokens(
    garmin: Garmin,
) -> None:
    client, key, runtime, fake = garmin
    created = await _create(client, key, {"token_file": fake.token_file()})
    destination_id = created.json()["id"]
    before = await _stored(runtime, destination_id)
    async with runtime.sessions() as session, session.begin():
        # Parked as the engine parks it when Garmin refuses the tokens.
        await session.execute(
            update(Destination)
            .where(Destination.id == destination_id)
            .values(enabled=False, disabled_reason="needs re-authorization: refused")
        )
    patched = await client.patch(
        f"/v1/destinations/{destination_id}",
        json={"secrets": {"service_ticket": fake.sign_in()}},
        headers=bearer(key),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is True  # new tokens lift the parking
    after = await _stored(runtime, destination_id)
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token_expires_at"] is not None  # Garmin said when, the file did not
    assert "service_ticket" not in after


async def test_ticket_and_token_file_are_garmins_only(
    garmin: Garmin,
) -> None:
    client, key, _, fake = garmin
    body = {
        "name": "hook",
        "kind": "intervals",
        "config": {"athlete_id": "i42"},
        "secrets": {"api_key": "k" * 24, "service_ticket": fake.sign_in()},
    }
    refused = await client.post("/v1/destinations", json=body, headers=bearer(key))
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("secrets.service_ticket: not a intervals secret")
    assert fake.calls["token"] == 0
