"""``/v1/destinations``: every kind, write-only secrets, rotation, tests, Strava's connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update

from service.app import create_app
from service.db import create_engine
from service.destinations.kinds.webhook import generate_secret
from service.destinations.models import Destination
from service.peloton.sandbox import SandboxState
from service.runtime import Runtime, open_runtime
from tests.api.conftest import Keys, api_settings, bearer, key_setup, running
from tests.destinations.fakes import fake_strava
from tests.destinations.receiver import Receiver
from tests.support.servers import serve

Api = tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]


async def create(client: httpx.AsyncClient, key: str, **body: object) -> httpx.Response:
    return await client.post("/v1/destinations", json=body, headers=bearer(key))


async def test_webhook_secret_is_generated_once_masked_and_rotated(
    api: Api, receiver: Receiver, webhook_secret: str
) -> None:
    client, keys, _, _ = api
    admin = bearer(keys.admin)
    created = await create(
        client, keys.admin, name="hook", kind="webhook", config={"url": receiver.url()}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    generated = body["generated_secret"]
    assert generated.startswith("whsec_")
    assert body["secrets"] == {"secret": "••••" + generated[-4:], "headers": {}}
    assert body["formats"] == ["fit"] and body["enabled"] is True
    shown = (await client.get(f"/v1/destinations/{body['id']}", headers=admin)).text
    assert generated not in shown and generated.removeprefix("whsec_") not in shown

    # Give it the receiver's secret and a header; both stay write-only.
    updated = await client.patch(
        f"/v1/destinations/{body['id']}",
        json={
            "secrets": {
                "secret": webhook_secret,
                "headers": {"Authorization": "Token abc123456789xyz"},
            }
        },
        headers=admin,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["secrets"]["headers"] == {"Authorization": "••••9xyz"}
    assert "abc123456789xyz" not in updated.text and webhook_secret not in updated.text
    # A read-only key sees no character of any secret, in the list and alone.
    reader = bearer(keys.read_only)
    alone = (await client.get(f"/v1/destinations/{body['id']}", headers=reader)).json()
    listed = (await client.get("/v1/destinations", headers=reader)).json()["items"]
    for seen in (alone, *listed):
        assert seen["secrets"] == {"secret": "••••", "headers": {"Authorization": "••••"}}
    ping = (await client.post(f"/v1/destinations/{body['id']}/test", headers=admin)).json()
    assert (
        ping["ok"] is True
        and receiver.requests[-1].headers["authorization"] == "Token abc123456789xyz"
    )

    # Rotate: a new secret shown once; the old one still signs (the receiver knows only it).
    rotated = await client.post(f"/v1/destinations/{body['id']}/rotate-secret", headers=admin)
    assert rotated.status_code == 200
    new_secret = rotated.json()["generated_secret"]
    assert new_secret.startswith("whsec_") and new_secret != webhook_secret
    assert rotated.json()["config"]["previous_secret_expires_at"] is not None
    assert "previous_secret" in rotated.json()["secrets"]
    ping = (await client.post(f"/v1/destinations/{body['id']}/test", headers=admin)).json()
    assert ping["ok"] is True
    signatures = receiver.requests[-1].headers["webhook-signature"].split()
    assert len(signatures) == 2  # signed by both: receivers can switch without a gap
    chosen = generate_secret()
    again = await client.post(
        f"/v1/destinations/{body['id']}/rotate-secret", json={"secret": chosen}, headers=admin
    )
    assert again.json()["generated_secret"] is None and chosen not in again.text
    bad = await client.post(
        f"/v1/destinations/{body['id']}/rotate-secret", json={"secret": "nope"}, headers=admin
    )
    assert bad.status_code == 422


async def test_every_kind_validates_its_config_and_secrets(api: Api, tmp_path: Path) -> None:
    client, keys, runtime, _ = api
    key = keys.admin
    # Strava and Garmin set up (without them, those kinds are refused: test_checks.py).
    runtime.settings.strava_client_id = "4242"
    runtime.settings.strava_client_secret = SecretStr("app-secret")
    runtime.settings.garmin_enabled = True
    cases = [
        ({"kind": "directory", "config": {"root": str(tmp_path)}, "formats": ["json", "gpx"]}, 201),
        ({"kind": "directory", "config": {"root": "relative"}}, "config.root"),
        ({"kind": "directory", "config": {"root": "/etc"}}, "config.root"),  # not an export root
        ({"kind": "directory", "config": {"root": f"{tmp_path}/../x"}}, "config.root"),
        ({"kind": "strava", "formats": ["fit", "tcx"]}, 201),
        ({"kind": "strava", "formats": ["json"]}, "formats"),
        ({"kind": "strava", "secrets": {"access_token": "x"}}, "secrets"),
        (
            {
                "kind": "intervals",
                "config": {"athlete_id": "i42"},
                "secrets": {"api_key": "k" * 24},
            },
            201,
        ),
        ({"kind": "intervals", "secrets": {}}, "secrets"),
        ({"kind": "intervals", "secrets": {"password": "x"}}, "secrets.password"),
        (
            {"kind": "garmin", "secrets": {"access_token": "eyJ.a.b", "refresh_token": "r" * 20}},
            201,
        ),
        ({"kind": "garmin", "secrets": {"refresh_token": "r"}}, "secrets.access_token"),
        ({"kind": "webhook", "config": {"url": "ftp://x"}}, "config.url"),
        (
            {"kind": "webhook", "config": {"url": "https://a.example", "secret": "x"}},
            "config.secret",
        ),
        (
            {"kind": "webhook", "config": {"url": "https://a.example"}, "secrets": {"secret": "x"}},
            "secrets.secret",
        ),
        ({"kind": "webhook", "config": {"url": "https://a.example\u0000"}}, "config"),
        (
            {"kind": "webhook", "config": {"url": "https://a.example"}, "formats": ["fit", "fit"]},
            "formats",
        ),
        ({"kind": "ftp"}, "kind"),
    ]
    for body, expected in cases:
        response = await create(client, key, name="d", **body)
        if expected == 201:
            assert response.status_code == 201, (body, response.text)
            for value in (body.get("secrets") or {}).values():
                assert value not in response.text
        else:
            assert response.status_code == 422, (body, response.text)
            problem = response.json()
            assert problem["detail"].startswith(str(expected)), (body, problem)
    listed = (await client.get("/v1/destinations", params={"limit": 2}, headers=bearer(key))).json()
    assert [d["kind"] for d in listed["items"]] == ["directory", "strava"]
    rest = await client.get(
        "/v1/destinations", params={"cursor": listed["next_cursor"]}, headers=bearer(key)
    )
    assert [d["kind"] for d in rest.json()["items"]] == ["intervals", "garmin"]


async def test_enable_disable_delete_and_unknown_ids(api: Api, tmp_path: Path) -> None:
    client, keys, _, _ = api
    admin = bearer(keys.admin)
    created = await create(
        client, keys.admin, name="folder", kind="directory", config={"root": str(tmp_path)}
    )
    destination_id = created.json()["id"]
    disabled = await client.post(f"/v1/destinations/{destination_id}/disable", headers=admin)
    assert disabled.json()["enabled"] is False
    assert disabled.json()["disabled_reason"] == "disabled through the API"
    enabled = await client.post(f"/v1/destinations/{destination_id}/enable", headers=admin)
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None
    rotate = await client.post(f"/v1/destinations/{destination_id}/rotate-secret", headers=admin)
    assert rotate.status_code == 422  # only webhooks have signing secrets
    ping = (await client.post(f"/v1/destinations/{destination_id}/test", headers=admin)).json()
    assert ping["ok"] is True
    replay = await client.post(
        f"/v1/destinations/{destination_id}/replay",
        json={"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        headers=admin,
    )
    assert replay.status_code == 422 and replay.json()["detail"].startswith("end")
    assert (
        await client.delete(f"/v1/destinations/{destination_id}", headers=admin)
    ).status_code == 204
    for method, path in (
        ("GET", "/v1/destinations/{}"),
        ("PATCH", "/v1/destinations/{}"),
        ("POST", "/v1/destinations/{}/test"),
        ("POST", "/v1/destinations/{}/enable"),
    ):
        response = await client.request(
            method,
            path.format(destination_id),
            headers=admin,
            json={} if method == "PATCH" else None,
        )
        assert response.status_code == 404, (method, path)
        assert response.json()["title"] == "Not found"


@pytest.fixture
def strava() -> object:
    with serve("strava") as (url, switch):
        fake = fake_strava.FakeStrava()
        switch.app = fake.app()
        yield url, fake


@pytest.fixture
async def strava_api(
    tmp_path: Path, database_url: str, strava: tuple[str, fake_strava.FakeStrava]
) -> AsyncIterator[tuple[httpx.AsyncClient, Keys, fake_strava.FakeStrava]]:
    url, fake = strava
    settings = api_settings(
        tmp_path,
        database_url,
        "http://127.0.0.1:9",
        strava_client_id=fake_strava.CLIENT_ID,
        strava_client_secret=fake_strava.CLIENT_SECRET,
        strava_oauth_url=f"{url}/oauth",
        strava_api_url=f"{url}/api/v3",
        public_url="https://sync.example.com",
    )
    found = Keys()
    async with open_runtime(settings) as rt:
        app = create_app(settings, scheduler=False, runtime=rt, on_started=key_setup(found))
        async with running(app) as client:
            yield client, found, fake


async def test_strava_connect_redirects_and_the_callback_stores_the_tokens(
    strava_api: tuple[httpx.AsyncClient, Keys, fake_strava.FakeStrava],
) -> None:
    client, keys, fake = strava_api
    admin = bearer(keys.admin)
    created = await create(client, keys.admin, name="strava", kind="strava")
    destination_id = created.json()["id"]
    assert created.json()["secrets"] == {}
    redirect = await client.get(f"/v1/destinations/{destination_id}/strava/connect", headers=admin)
    assert redirect.status_code == 307
    location = urlsplit(redirect.headers["location"])
    query = parse_qs(location.query)
    assert location.path.endswith("/oauth/authorize")
    assert query["client_id"] == [fake_strava.CLIENT_ID]
    assert query["redirect_uri"] == ["https://sync.example.com/v1/strava/callback"]
    state = query["state"][0]

    async def new_state() -> str:
        started = await client.get(
            f"/v1/destinations/{destination_id}/strava/connect", headers=admin
        )
        return parse_qs(urlsplit(started.headers["location"]).query)["state"][0]

    code = fake.issue_code()
    # Strava's redirect carries no API key: the signed state is what is checked, and it is
    # used up by any callback that presents it, whatever happens next.
    denied = await client.get(
        "/v1/strava/callback", params={"state": state, "error": "access_denied"}
    )
    assert denied.status_code == 422 and "access_denied" in denied.json()["detail"]
    narrow = await client.get(
        "/v1/strava/callback", params={"state": await new_state(), "code": code, "scope": "read"}
    )
    assert narrow.status_code == 422 and "activity:write" in narrow.json()["detail"]
    state = await new_state()
    forged = await client.get(
        "/v1/strava/callback",
        params={"state": state[:-4] + "AAAA", "code": code, "scope": "activity:write"},
    )
    assert forged.status_code == 422
    connected = await client.get(
        "/v1/strava/callback", params={"state": state, "code": code, "scope": "read,activity:write"}
    )
    assert connected.status_code == 200, connected.text
    assert connected.json() == {
        "destination_id": destination_id,
        "athlete_id": fake_strava.ATHLETE["id"],
        "scope": "read,activity:write",
        "enabled": True,
    }
    shown = (await client.get(f"/v1/destinations/{destination_id}", headers=admin)).json()
    assert set(shown["secrets"]) >= {"access_token", "refresh_token", "expires_at"}
    assert shown["secrets"]["athlete_id"] == fake_strava.ATHLETE["id"]
    assert all(v.startswith("••••") for k, v in shown["secrets"].items() if k.endswith("token"))
    ping = (await client.post(f"/v1/destinations/{destination_id}/test", headers=admin)).json()
    assert ping["ok"] is True, ping
    webhook = await create(
        client, keys.admin, name="w", kind="webhook", config={"url": "https://x.example"}
    )
    other = await client.get(
        f"/v1/destinations/{webhook.json()['id']}/strava/connect", headers=admin
    )
    assert other.status_code == 422


async def _start(client: httpx.AsyncClient, key: str, destination_id: int) -> str:
    started = await client.get(
        f"/v1/destinations/{destination_id}/strava/connect", headers=bearer(key)
    )
    assert started.status_code == 307, started.text
    return parse_qs(urlsplit(started.headers["location"]).query)["state"][0]


async def _finish(
    client: httpx.AsyncClient, fake: fake_strava.FakeStrava, state: str
) -> httpx.Response:
    params = {"state": state, "code": fake.issue_code(), "scope": "read,activity:write"}
    return await client.get("/v1/strava/callback", params=params)


async def test_only_admin_keys_start_a_strava_authorization_and_a_state_works_once(
    strava_api: tuple[httpx.AsyncClient, Keys, fake_strava.FakeStrava],
) -> None:
    client, keys, fake = strava_api
    destination_id = (await create(client, keys.admin, name="s", kind="strava")).json()["id"]
    refused = await client.get(
        f"/v1/destinations/{destination_id}/strava/connect", headers=bearer(keys.read_only)
    )
    assert refused.status_code == 403 and refused.json()["title"] == "Forbidden"

    state = await _start(client, keys.admin, destination_id)
    first = await _finish(client, fake, state)
    assert first.status_code == 200, first.text
    again = await _finish(client, fake, state)
    assert again.status_code == 422
    assert "used already or has expired" in again.json()["detail"]


async def test_a_state_dies_with_the_key_that_started_it_and_with_time(
    strava_api: tuple[httpx.AsyncClient, Keys, fake_strava.FakeStrava],
) -> None:
    client, keys, fake = strava_api
    admin = bearer(keys.admin)
    destination_id = (await create(client, keys.admin, name="s", kind="strava")).json()["id"]
    other = (
        await client.post("/v1/api-keys", json={"name": "ops", "role": "admin"}, headers=admin)
    ).json()
    state = await _start(client, other["key"], destination_id)
    assert (await client.delete(f"/v1/api-keys/{other['id']}", headers=admin)).status_code == 200
    revoked = await _finish(client, fake, state)
    assert revoked.status_code == 422 and "no longer an active admin key" in revoked.text
    shown = (await client.get(f"/v1/destinations/{destination_id}", headers=admin)).json()
    assert shown["secrets"] == {}  # nothing stored


async def test_a_callback_never_enables_what_an_admin_disabled(
    strava_api: tuple[httpx.AsyncClient, Keys, fake_strava.FakeStrava],
) -> None:
    client, keys, fake = strava_api
    admin = bearer(keys.admin)
    destination_id = (await create(client, keys.admin, name="s", kind="strava")).json()["id"]
    state = await _start(client, keys.admin, destination_id)
    disabled = await client.post(f"/v1/destinations/{destination_id}/disable", headers=admin)
    assert disabled.status_code == 200, disabled.text
    connected = await _finish(client, fake, state)
    assert connected.status_code == 200 and connected.json()["enabled"] is False
    shown = (await client.get(f"/v1/destinations/{destination_id}", headers=admin)).json()
    assert shown["enabled"] is False and shown["disabled_reason"] == "disabled through the API"
    assert "access_token" in shown["secrets"]  # connected, still paused


async def test_a_callback_enables_a_destination_parked_for_reauthorization(
    strava_api: tuple[httpx.AsyncClient, Keys, fake_strava.FakeStrava], database_url: str
) -> None:
    client, keys, fake = strava_api
    admin = bearer(keys.admin)
    destination_id = (await create(client, keys.admin, name="s", kind="strava")).json()["id"]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:  # as the delivery engine parks it
            await conn.execute(
                update(Destination)
                .where(Destination.id == destination_id)
                .values(enabled=False, disabled_reason="needs re-authorization: refused")
            )
    finally:
        await engine.dispose()
    connected = await _finish(client, fake, await _start(client, keys.admin, destination_id))
    assert connected.status_code == 200 and connected.json()["enabled"] is True
    shown = (await client.get(f"/v1/destinations/{destination_id}", headers=admin)).json()
    assert shown["enabled"] is True and shown["disabled_reason"] is None


async def test_a_folder_cannot_be_moved_outside_the_export_roots(api: Api, tmp_path: Path) -> None:
    client, keys, _, _ = api
    admin = bearer(keys.admin)
    created = await create(
        client, keys.admin, name="f", kind="directory", config={"root": str(tmp_path / "out")}
    )
    assert created.status_code == 201, created.text
    moved = await client.patch(
        f"/v1/destinations/{created.json()['id']}",
        json={"config": {"root": "/var/tmp/elsewhere"}},
        headers=admin,
    )
    assert moved.status_code == 422
    assert moved.json()["detail"].startswith("config.root: /var/tmp/elsewhere is outside")
    assert "PELOSYNC_EXPORT_ROOTS" in moved.json()["detail"]
