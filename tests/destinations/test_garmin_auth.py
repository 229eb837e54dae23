"""Garmin's DI tokens against the loopback fake: the service-ticket exchange, the refresh, and
reading python-garminconnect's token file."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
import structlog

from service.destinations.kinds.base import DeliveryError, NeedsReauthorization, Postponed
from service.destinations.kinds.garmin_auth import (
    DEFAULT_CLIENT_IDS,
    DEFAULT_SERVICE_URL,
    SERVICE_TICKET_GRANT,
    DiAuth,
)
from service.destinations.kinds.garmin_setup import parse_token_file, sign_in_expiry
from service.errors import InvalidInput
from tests.destinations.fakes.fake_garmin import (
    CLIENT_ID,
    CLIENT_IDS,
    REFRESH_TTL_S,
    FakeGarmin,
    make_jwt,
)
from tests.destinations.fakes.support import error_text, leaked
from tests.support.clock import FakeClock
from tests.support.servers import Switch, serve

ANDROID_HEADERS = {
    "user-agent": "GCM-Android-5.23",
    "x-garmin-user-agent": (
        "com.garmin.android.apps.connectmobile/5.23; ; Google/sdk_gphone64_arm64/google; "
        "Android/33; Dalvik/2.1.0"
    ),
    "x-garmin-paired-app-version": "10861",
    "x-garmin-client-platform": "Android",
    "x-app-ver": "10861",
    "x-lang": "en",
    "x-gcexperience": "GC5",
}


@pytest.fixture(scope="module")
def garmin_server() -> Iterator[tuple[str, Switch]]:
    with serve("garmin-auth") as served:
        yield served


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(garmin_server: tuple[str, Switch], clock: FakeClock) -> FakeGarmin:
    fake = FakeGarmin(now=clock.epoch)
    garmin_server[1].app = fake.app()
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def auth(http: httpx.AsyncClient, garmin_server: tuple[str, Switch], clock: FakeClock) -> DiAuth:
    return DiAuth(http, token_url=f"{garmin_server[0]}/di-oauth2-service/oauth/token", clock=clock)


def test_the_defaults_are_the_tools_lists() -> None:
    assert DEFAULT_CLIENT_IDS == CLIENT_IDS
    assert DEFAULT_SERVICE_URL == "https://mobile.integration.garmin.com/gcm/android"


# --- the service ticket -------------------------------------------------------------------------


async def test_ticket_is_exchanged_with_the_tools_request(
    auth: DiAuth, fake: FakeGarmin, clock: FakeClock
) -> None:
    ticket = fake.sign_in()
    tokens = await auth.exchange_ticket(ticket)
    ((authorization, form, headers),) = fake.token_requests
    assert authorization == "Basic " + base64.b64encode(f"{CLIENT_ID}:".encode()).decode()
    assert form == {
        "client_id": CLIENT_ID,
        "service_ticket": ticket,
        "grant_type": SERVICE_TICKET_GRANT,
        "service_url": DEFAULT_SERVICE_URL,
    }
    assert {k: headers[k] for k in ANDROID_HEADERS} == ANDROID_HEADERS
    assert tokens.access_token in fake.access_tokens
    assert fake.refresh_tokens[tokens.refresh_token or ""][0] == CLIENT_ID
    now = int(clock.epoch())
    secrets = tokens.as_secrets()
    assert secrets["client_id"] == CLIENT_ID
    assert secrets["expires_at"] == now + 86400
    assert secrets["refresh_token_expires_at"] == now + REFRESH_TTL_S


async def test_client_ids_are_tried_in_turn(auth: DiAuth, fake: FakeGarmin) -> None:
    # Garmin has retired the newest two; the third is still taken.
    fake.active_client_ids = {"GARMIN_CONNECT_MOBILE_ANDROID_DI"}
    tokens = await auth.exchange_ticket(fake.sign_in())
    tried = [form["client_id"] for _, form, _ in fake.token_requests]
    assert tried == list(CLIENT_IDS[:3])
    assert tokens.client_id == "GARMIN_CONNECT_MOBILE_ANDROID_DI"


async def test_a_used_ticket_is_refused_naming_every_client_id(
    auth: DiAuth, fake: FakeGarmin
) -> None:
    ticket = fake.sign_in()
    await auth.exchange_ticket(ticket)
    with pytest.raises(NeedsReauthorization, match="every client id") as caught:
        await auth.exchange_ticket(ticket)  # tickets work once
    assert all(client in caught.value.message for client in CLIENT_IDS)
    assert caught.value.remote_status == 400


async def test_the_ticket_must_be_for_the_service_url(
    auth: DiAuth, fake: FakeGarmin, http: httpx.AsyncClient, garmin_server: tuple[str, Switch]
) -> None:
    web = "https://connect.garmin.com/app"  # the web portal's sign-in, not the app's
    with pytest.raises(NeedsReauthorization):
        await auth.exchange_ticket(fake.sign_in(service_url=web))
    other = DiAuth(
        http, token_url=f"{garmin_server[0]}/di-oauth2-service/oauth/token", service_url=web
    )
    assert (await other.exchange_ticket(fake.sign_in(service_url=web))).access_token


async def test_a_stale_ticket_is_refused(auth: DiAuth, fake: FakeGarmin, clock: FakeClock) -> None:
    ticket = fake.sign_in()
    clock.advance(120)
    with pytest.raises(NeedsReauthorization, match="about a minute"):
        await auth.exchange_ticket(ticket)


async def test_rate_limit_and_server_error_stop_the_exchange(
    auth: DiAuth, fake: FakeGarmin
) -> None:
    fake.fault("POST", "/di-oauth2-service", 429, {}, {"Retry-After": "40"})
    with pytest.raises(Postponed) as postponed:
        await auth.exchange_ticket(fake.sign_in())
    assert postponed.value.retry_after == 40.0
    fake.fault("POST", "/di-oauth2-service", 503, {"error": "unavailable"})
    with pytest.raises(DeliveryError) as failed:
        await auth.exchange_ticket(fake.sign_in())
    assert type(failed.value) is DeliveryError and failed.value.retryable
    assert fake.calls["token"] == 2  # no other client id was tried after either


# --- the refresh --------------------------------------------------------------------------------


async def test_refresh_rotates_and_keeps_the_sign_ins_end(
    auth: DiAuth, fake: FakeGarmin, clock: FakeClock
) -> None:
    first = await auth.exchange_ticket(fake.sign_in())
    clock.advance(days=10)
    new = await auth.refresh(CLIENT_ID, first.refresh_token or "")
    assert new.refresh_token != first.refresh_token and new.refresh_token in fake.refresh_tokens
    # Ten days later the refresh token still ends 30 days after the sign-in.
    assert new.refresh_token_expires_at == first.refresh_token_expires_at
    assert new.expires_at == int(clock.epoch()) + 86400
    _, form, headers = fake.token_requests[-1]
    assert form["grant_type"] == "refresh_token" and form["client_id"] == CLIENT_ID
    assert {k: headers[k] for k in ANDROID_HEADERS} == ANDROID_HEADERS


async def test_refresh_after_the_sign_ins_end_needs_a_new_ticket(
    auth: DiAuth, fake: FakeGarmin, clock: FakeClock
) -> None:
    first = await auth.exchange_ticket(fake.sign_in())
    clock.advance(days=31)
    with pytest.raises(NeedsReauthorization, match="new service ticket or token file"):
        await auth.refresh(CLIENT_ID, first.refresh_token or "")


async def test_no_token_or_ticket_in_errors_or_logs(
    auth: DiAuth, fake: FakeGarmin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ticket = fake.sign_in()
    errors: list[DeliveryError] = []
    with structlog.testing.capture_logs() as logs:
        tokens = await auth.exchange_ticket(ticket)
        fake.fault("POST", "/di-oauth2-service", 500, {"echo": [ticket, tokens.refresh_token]})
        with pytest.raises(DeliveryError) as caught:
            await auth.refresh(CLIENT_ID, tokens.refresh_token or "")
        errors.append(caught.value)
        with pytest.raises(NeedsReauthorization) as refused:
            await auth.exchange_ticket(ticket)
        errors.append(refused.value)
    assert "[redacted]" in (errors[0].response_excerpt or "")
    known = [ticket, tokens.access_token, tokens.refresh_token or ""]
    texts = [repr(logs), caplog.text, *(error_text(e) for e in errors)]
    assert leaked(known, *texts) == []


# --- the token file -----------------------------------------------------------------------------


def test_token_file_of_python_garminconnect(fake: FakeGarmin, clock: FakeClock) -> None:
    text = fake.token_file()
    data = json.loads(text)
    tokens = parse_token_file(text)
    assert (tokens.access_token, tokens.refresh_token, tokens.client_id) == (
        data["di_token"],
        data["di_refresh_token"],
        CLIENT_ID,
    )
    assert tokens.expires_at == int(clock.epoch()) + 86400  # the di_token's exp claim
    assert tokens.refresh_token_expires_at is None  # an opaque refresh token does not say


def test_token_file_client_id_from_the_token(fake: FakeGarmin) -> None:
    assert parse_token_file(fake.token_file(di_client_id=None)).client_id == CLIENT_ID


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("di_token=abc", "not JSON; paste the whole content of garmin_tokens.json"),
        ('["oauth1", "oauth2"]', "garth token file"),
        ('"just a string"', "not a JSON object"),
        (
            '{"di_token": null, "di_refresh_token": null, "di_client_id": null}',
            "no di_token: this file came from the cookie login fallback",
        ),
        ('{"jwt_web": "cookie-value"}', "it holds only a jwt_web browser cookie"),
        ('{"di_token": "eyJ.a.b", "di_client_id": "X"}', "no di_refresh_token"),
        ('{"di_token": "opaque", "di_refresh_token": "r"}', "no di_client_id"),
    ],
)
def test_bad_token_files_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_token_file(text)
    assert caught.value.field == "secrets.token_file"


def test_token_file_errors_do_not_show_tokens() -> None:
    secret = make_jwt({"exp": 1})
    with pytest.raises(InvalidInput) as caught:
        parse_token_file(json.dumps({"di_token": secret, "di_client_id": "X"}))
    assert secret not in str(caught.value) and "no di_refresh_token" in caught.value.message
    assert "prompt_mfa" in caught.value.message  # how to get a whole file


# --- how long the sign-in lasts -----------------------------------------------------------------


def test_sign_in_expiry_warns_from_seven_days(clock: FakeClock) -> None:
    now = clock()
    epoch = int(now.timestamp())
    assert sign_in_expiry({"refresh_token_expires_at": None}, now) is None
    assert sign_in_expiry({}, now) is None
    far = sign_in_expiry({"refresh_token_expires_at": epoch + 20 * 86400}, now)
    assert far is not None and far.days_left == 20 and not far.warning
    assert far.at == now + timedelta(days=20)
    near = sign_in_expiry({"refresh_token_expires_at": epoch + 6 * 86400 + 3600}, now)
    assert near is not None and near.days_left == 6 and near.warning and not near.ended
    seven = sign_in_expiry({"refresh_token_expires_at": epoch + 7 * 86400 + 60}, now)
    assert seven is not None and not seven.warning
    gone = sign_in_expiry({"refresh_token_expires_at": epoch - 60}, now)
    assert gone is not None and gone.ended and gone.warning
