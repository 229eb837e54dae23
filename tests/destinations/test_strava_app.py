"""Strava API applications against the loopback fake: the athlete capacity of a new application,
a destination's own application, and revoking a destination's access."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from service.config import Settings
from service.destinations.kinds.base import DeliveryError, NeedsReauthorization
from service.destinations.kinds.strava import StravaConfig, StravaDestination
from service.destinations.kinds.strava_app import (
    AppCredentials,
    StravaApp,
    app_credentials,
    revoke_access,
)
from service.destinations.kinds.strava_oauth import DEFAULT_SCOPE, StravaOAuth
from service.destinations.ratelimit import StravaRateLimiter
from service.errors import InvalidInput
from tests.destinations.fakes.fake_strava import (
    ATHLETE,
    CLIENT_ID,
    CLIENT_SECRET,
    SECOND_ATHLETE,
    FakeStrava,
)
from tests.support.clock import FakeClock, RecordingSleep
from tests.support.servers import Switch, serve

OWN_ID = "67890"
OWN_SECRET = "riders-own-strava-app-secret-0a1b2c"
CALLBACK = "https://sync.example/v1/strava/callback"


@pytest.fixture(scope="module")
def strava_server() -> Iterator[tuple[str, Switch]]:
    with serve("strava") as served:
        yield served


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(strava_server: tuple[str, Switch], clock: FakeClock) -> FakeStrava:
    fake = FakeStrava(now=clock.epoch)
    strava_server[1].app = fake.app()
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def settings_for(base: str, **values: Any) -> Settings:
    return Settings(
        _env_file=None,
        strava_oauth_url=f"{base}/oauth",
        strava_api_url=f"{base}/api/v3",
        **values,
    )


def make_app(
    http: httpx.AsyncClient, base: str, clock: FakeClock, client_id: str, secret: str
) -> StravaApp:
    oauth = StravaOAuth(
        http, client_id=client_id, client_secret=secret, oauth_url=f"{base}/oauth", clock=clock
    )
    return StravaApp(oauth, StravaRateLimiter(clock=clock), f"{base}/api/v3")


async def approve(http: httpx.AsyncClient, app: StravaApp) -> httpx.Response:
    """The athlete opens the authorize URL and approves (the fake approves at once)."""
    return await http.get(app.oauth.authorize_url(CALLBACK, "st4te"))


# --- which application ------------------------------------------------------------------------


def test_a_destination_uses_its_own_application_else_the_services() -> None:
    shared = Settings(
        _env_file=None, strava_client_id=CLIENT_ID, strava_client_secret=SecretStr(CLIENT_SECRET)
    )
    own = app_credentials(shared, {"client_id": OWN_ID}, {"client_secret": OWN_SECRET})
    assert (own.client_id, own.client_secret.get_secret_value(), own.own) == (
        OWN_ID,
        OWN_SECRET,
        True,
    )
    assert OWN_SECRET not in repr(own)
    fallback = app_credentials(shared, {}, {"access_token": "x"})
    assert (fallback.client_id, fallback.own) == (CLIENT_ID, False)
    with pytest.raises(InvalidInput, match="config.client_id and secrets.client_secret"):
        app_credentials(Settings(_env_file=None), {}, {})
    with pytest.raises(InvalidInput, match="PELOSYNC_STRAVA_CLIENT_ID"):
        app_credentials(Settings(_env_file=None), {"client_id": OWN_ID}, {})


def test_strava_config_client_id_is_a_number() -> None:
    assert StravaConfig(client_id="67890").client_id == "67890"
    with pytest.raises(ValueError, match="client_id"):
        StravaConfig(client_id="abc")


async def test_a_new_application_connects_one_athlete_then_a_riders_own_connects_the_next(
    http: httpx.AsyncClient, strava_server: tuple[str, Switch], fake: FakeStrava, clock: FakeClock
) -> None:
    base = strava_server[0]
    shared = make_app(http, base, clock, CLIENT_ID, CLIENT_SECRET)
    first = await approve(http, shared)
    assert first.status_code == 302
    back = parse_qs(urlsplit(first.headers["location"]).query)
    assert back["state"] == ["st4te"] and back["scope"] == [DEFAULT_SCOPE]
    tokens = await shared.oauth.exchange_code(back["code"][0])
    assert tokens.athlete_id == ATHLETE["id"]

    # A second rider on the same (unreviewed) application: Strava's own 403 page, and no code
    # ever reaches pelosync's callback.
    fake.signed_in = dict(SECOND_ATHLETE)
    refused = await approve(http, shared)
    assert refused.status_code == 403
    assert "Limit of connected athletes exceeded" in refused.text
    assert "location" not in refused.headers

    # The second rider's own application connects them; its code is not the shared app's.
    fake.add_app(OWN_ID, OWN_SECRET)
    own = make_app(http, base, clock, OWN_ID, OWN_SECRET)
    approved = await approve(http, own)
    assert approved.status_code == 302
    code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
    with pytest.raises(NeedsReauthorization, match="authorization code"):
        await shared.oauth.exchange_code(code)
    second = await own.oauth.exchange_code(
        fake.issue_code(client_id=OWN_ID, athlete=SECOND_ATHLETE)
    )
    assert second.athlete_id == SECOND_ATHLETE["id"]
    assert fake.token_requests[-1]["client_id"] == OWN_ID
    assert fake.token_requests[-1]["client_secret"] == OWN_SECRET


async def test_own_application_refreshes_with_its_own_secret(
    http: httpx.AsyncClient, strava_server: tuple[str, Switch], fake: FakeStrava, clock: FakeClock
) -> None:
    fake.add_app(OWN_ID, OWN_SECRET)
    secrets = fake.seed_tokens(expires_in=5, client_id=OWN_ID, athlete=SECOND_ATHLETE)
    credentials = AppCredentials(OWN_ID, SecretStr(OWN_SECRET), own=True)
    app = StravaApp.from_settings(
        http, settings_for(strava_server[0]), clock=clock, credentials=credentials
    )
    kind = StravaDestination(
        http,
        StravaConfig(client_id=OWN_ID),
        secrets,
        app=app,
        clock=clock,
        sleep=RecordingSleep(clock),
    )
    result = await kind.ping()
    assert result.external_id == str(SECOND_ATHLETE["id"])
    refresh = [r for r in fake.token_requests if r["grant_type"] == "refresh_token"]
    assert [(r["client_id"], r["client_secret"]) for r in refresh] == [(OWN_ID, OWN_SECRET)]

    # A wrong secret for its own application names the destination's fields, not the settings.
    wrong = AppCredentials(OWN_ID, SecretStr("not-the-secret-of-it"), own=True)
    bad = StravaApp.from_settings(
        http, settings_for(strava_server[0]), clock=clock, credentials=wrong
    )
    assert result.updated_secrets is not None
    stale = {**result.updated_secrets, "expires_at": 0}
    with pytest.raises(DeliveryError, match="secrets.client_secret") as caught:
        await StravaDestination(
            http, StravaConfig(), stale, app=bad, clock=clock, sleep=RecordingSleep(clock)
        ).ping()
    assert "not-the-secret-of-it" not in str(caught.value)


async def test_a_token_exchange_refused_for_capacity_names_both_ways(
    http: httpx.AsyncClient, strava_server: tuple[str, Switch], fake: FakeStrava, clock: FakeClock
) -> None:
    # Strava shows its capacity error on its own page; should the token exchange ever answer
    # it (a 403 in Strava's error shape), the message still says what to do.
    app = make_app(http, strava_server[0], clock, CLIENT_ID, CLIENT_SECRET)
    body = {"message": "Limit of connected athletes exceeded", "errors": []}
    fake.fault("POST", "/oauth/token", 403, body)
    with pytest.raises(NeedsReauthorization, match="Limit of connected athletes") as caught:
        await app.oauth.exchange_code(fake.issue_code())
    assert "config.client_id and secrets.client_secret" in str(caught.value)
    assert "athlete capacity raised" in str(caught.value)


# --- revoking -----------------------------------------------------------------------------------


async def test_revoking_invalidates_every_token_and_frees_the_place(
    http: httpx.AsyncClient, strava_server: tuple[str, Switch], fake: FakeStrava, clock: FakeClock
) -> None:
    app = make_app(http, strava_server[0], clock, CLIENT_ID, CLIENT_SECRET)
    secrets = fake.seed_tokens()
    outcome = await revoke_access(app, secrets, clock=clock)
    assert outcome == "its access to Strava is revoked"
    assert fake.deauthorized == [ATHLETE["id"]] and fake.calls["token:refresh_token"] == 0
    assert fake.access_tokens == {} and fake.refresh_tokens == {}
    assert fake.apps[CLIENT_ID].connected == set()
    with pytest.raises(NeedsReauthorization):
        await StravaDestination(
            http, StravaConfig(), secrets, app=app, clock=clock, sleep=RecordingSleep(clock)
        ).ping()
    # The place is free: another athlete can connect to the single-athlete application.
    fake.signed_in = dict(SECOND_ATHLETE)
    assert (await approve(http, app)).status_code == 302


async def test_revoking_refreshes_an_expired_token_first(
    http: httpx.AsyncClient, strava_server: tuple[str, Switch], fake: FakeStrava, clock: FakeClock
) -> None:
    app = make_app(http, strava_server[0], clock, CLIENT_ID, CLIENT_SECRET)
    secrets = {**fake.seed_tokens(), "expires_at": int(clock.epoch()) - 10}
    fake.access_tokens.pop(secrets["access_token"])  # Strava no longer takes it
    assert await revoke_access(app, secrets, clock=clock) == "its access to Strava is revoked"
    assert fake.calls["token:refresh_token"] == 1 and fake.deauthorized == [ATHLETE["id"]]


async def test_revoking_what_the_athlete_revoked_already_is_no_error(
    http: httpx.AsyncClient, strava_server: tuple[str, Switch], fake: FakeStrava, clock: FakeClock
) -> None:
    app = make_app(http, strava_server[0], clock, CLIENT_ID, CLIENT_SECRET)
    secrets = fake.seed_tokens()
    fake.access_tokens.clear()
    fake.refresh_tokens.clear()
    outcome = await revoke_access(app, secrets, clock=clock)
    assert outcome == "Strava had already revoked its access"
    assert fake.calls["POST /oauth/deauthorize"] == 1 and fake.calls["token:refresh_token"] == 1
    assert await revoke_access(app, {}, clock=clock) == "it was never connected to Strava"


async def test_revoking_when_strava_cannot_be_reached_is_a_retryable_error(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    app = make_app(http, "http://127.0.0.1:9", clock, CLIENT_ID, CLIENT_SECRET)
    secrets = {"access_token": "a" * 40, "refresh_token": "r" * 40, "expires_at": 2**40}
    with pytest.raises(DeliveryError, match="did not answer the deauthorization") as caught:
        await revoke_access(app, secrets, clock=clock)
    assert caught.value.retryable and "a" * 40 not in str(caught.value)
