"""The Garmin Connect kind against the loopback fake, and its FIT device profiles."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import structlog
from garmin_fit_sdk import Decoder, Profile, Stream

from service.config import Settings
from service.convert.fit import PELOTON_MANUFACTURER, dump_fit
from service.convert.model import Discipline
from service.destinations.kinds.base import (
    DeliveryError,
    NeedsReauthorization,
    PermanentFailure,
    Postponed,
)
from service.destinations.kinds.garmin import (
    GarminConfig,
    GarminDestination,
    jwt_claims,
)
from service.destinations.kinds.garmin_devices import (
    CHOICES,
    PROFILE_BY_DISCIPLINE,
    PROFILES,
    fit_device_for,
    profile_for,
)
from service.errors import InvalidInput
from tests.convert.activities import build
from tests.destinations.fakes.fake_garmin import CLIENT_ID, FakeGarmin, make_jwt
from tests.destinations.fakes.support import delivery, error_text, leaked
from tests.support.clock import FakeClock
from tests.support.servers import Switch, serve

UPLOAD_FIT = "POST /upload-service/upload/.fit"


@pytest.fixture(scope="module")
def garmin_server() -> Iterator[tuple[str, Switch]]:
    with serve("garmin") as served:
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
def make(http: httpx.AsyncClient, garmin_server: tuple[str, Switch], clock: FakeClock) -> Any:
    base = garmin_server[0]

    def make(
        secrets: dict[str, Any], *, enabled: bool = True, device: str = "auto"
    ) -> GarminDestination:
        return GarminDestination(
            http,
            GarminConfig(device=device),
            secrets,
            enabled=enabled,
            upload_url=f"{base}/upload-service/upload",
            token_url=f"{base}/di-oauth2-service/oauth/token",
            profile_url=f"{base}/userprofile-service/socialProfile",
            clock=clock,
        )

    return make


# --- device profiles --------------------------------------------------------------------------


def test_device_profiles_are_named_in_the_fit_sdk_profile() -> None:
    manufacturers = Profile["types"]["manufacturer"]
    products = Profile["types"]["garmin_product"]
    for name, device in PROFILES.items():
        assert products[device.product] == name
        assert device.manufacturer in manufacturers.values()
    assert manufacturers[89] == "tacx" and manufacturers[1] == "garmin"


def test_discipline_mapping() -> None:
    assert profile_for(Discipline.CYCLING) == "tacx_training_app_win"
    assert profile_for("rowing") == "epix_gen2"
    for discipline in Discipline:
        if discipline not in PROFILE_BY_DISCIPLINE:
            assert profile_for(discipline) == "fr945"
    tacx = fit_device_for("cycling")
    assert (tacx.manufacturer, tacx.product, tacx.software_version) == ("tacx", 20533, 1.30)
    with pytest.raises(InvalidInput, match="unknown discipline 'pilates'"):
        fit_device_for("pilates")


@pytest.mark.parametrize(
    ("discipline", "manufacturer", "product", "software"),
    [
        (Discipline.CYCLING, "tacx", "tacx_training_app_win", 1.30),
        (Discipline.ROWING, "garmin", "epix_gen2", 10.43),
        (Discipline.STRENGTH, "garmin", "fr945", 19.2),
    ],
)
def test_rendered_fit_claims_the_device(
    discipline: Discipline, manufacturer: str, product: str, software: float
) -> None:
    data = dump_fit(build(discipline=discipline), device=fit_device_for(discipline))
    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    assert errors == []
    (file_id,) = messages["file_id_mesgs"]
    (creator,) = messages["device_info_mesgs"]
    assert (file_id["manufacturer"], file_id["garmin_product"]) == (manufacturer, product)
    assert (creator["manufacturer"], creator["garmin_product"]) == (manufacturer, product)
    assert creator["software_version"] == pytest.approx(software)
    assert file_id["serial_number"] == fit_device_for(discipline).serial_number


def _decoded_device(data: bytes) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """(manufacturer, product) of the FIT's file_id and of its creator's device_info."""
    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    assert errors == []
    (file_id,) = messages["file_id_mesgs"]
    (creator,) = messages["device_info_mesgs"]
    return (
        (file_id["manufacturer"], file_id.get("garmin_product", file_id.get("product"))),
        (creator["manufacturer"], creator.get("garmin_product", creator.get("product"))),
    )


@pytest.mark.parametrize(
    ("choice", "discipline", "expected"),
    [
        ("auto", Discipline.CYCLING, ("tacx", "tacx_training_app_win")),
        ("auto", Discipline.RUNNING, ("garmin", "fr945")),
        ("epix_gen2", Discipline.CYCLING, ("garmin", "epix_gen2")),  # one device for all
        ("fr945", Discipline.ROWING, ("garmin", "fr945")),
    ],
)
async def test_the_destinations_device_choice_is_in_the_fit(
    make: Any, choice: str, discipline: Discipline, expected: tuple[str, str]
) -> None:
    handler = make({}, device=choice)
    data = dump_fit(build(discipline=discipline), device=handler.fit_device_for(discipline))
    assert _decoded_device(data) == (expected, expected)


async def test_device_none_keeps_the_honest_device(make: Any) -> None:
    assert make({}, device="none").fit_device_for(Discipline.CYCLING) is None
    data = dump_fit(build(discipline=Discipline.CYCLING), device=None)
    (file_id, _creator) = _decoded_device(data)
    assert file_id[0] == PELOTON_MANUFACTURER


def test_device_choices_are_checked() -> None:
    assert CHOICES[0] == "auto" and CHOICES[-1] == "none" and set(PROFILES) < set(CHOICES)
    with pytest.raises(ValueError, match="choose one of auto, tacx_training_app_win"):
        GarminConfig(device="fenix99")
    # The user agent stored by default before (iOS with an Android client id) reads as default.
    assert GarminConfig.model_validate({"user_agent": "GCM-iOS-5.7.2.1"}).user_agent is None


# --- uploads ----------------------------------------------------------------------------------


async def test_upload_path_headers_and_activity_id(make: Any, fake: FakeGarmin) -> None:
    secrets = fake.seed_tokens()
    request = delivery()
    result = await make(secrets).deliver(request)
    (done,) = fake.imports
    assert fake.calls[UPLOAD_FIT] == 1 and done.extension == ".fit"
    assert done.data == request.file.data and done.filename == request.file.filename
    assert done.headers["authorization"] == f"Bearer {secrets['access_token']}"
    assert done.headers["nk"] == "NT"
    assert done.headers["origin"] == "https://sso.garmin.com"
    # Garmin Connect Mobile for Android, like the Android client id of the token.
    assert done.headers["user-agent"] == "GCM-Android-5.23"
    assert done.headers["x-garmin-client-platform"] == "Android"
    assert done.headers["x-garmin-user-agent"].startswith("com.garmin.android.apps.connectmobile/")
    assert result.external_id == str(done.activity_id) and result.status_code == 201
    assert result.updated_secrets is None


async def test_409_duplicate_is_delivered_with_the_existing_activity(
    make: Any, fake: FakeGarmin
) -> None:
    secrets = fake.seed_tokens()
    first = await make(secrets).deliver(delivery(delivery_id=1))
    again = await make(secrets).deliver(delivery(delivery_id=2))
    assert again.status_code == 409
    assert again.external_id == first.external_id
    assert again.response_excerpt is not None and "Duplicate Activity" in again.response_excerpt


async def test_same_start_as_a_watch_recording_is_a_duplicate_of_it(
    make: Any, fake: FakeGarmin
) -> None:
    activity = build(discipline=Discipline.CYCLING)
    watch = fake.record_on_watch(activity.start.replace(microsecond=0))
    data = dump_fit(activity, device=fit_device_for(Discipline.CYCLING))
    result = await make(fake.seed_tokens()).deliver(delivery(data=data))
    assert result.status_code == 409 and result.external_id == str(watch)
    excerpt = result.response_excerpt or ""
    assert excerpt.startswith(f"duplicate of activity {watch} (")
    assert "Duplicate Activity." in excerpt
    assert len(fake.imports) == 1  # nothing new in Garmin Connect


async def test_other_bytes_same_start_is_a_duplicate_of_the_first_upload(
    make: Any, fake: FakeGarmin
) -> None:
    activity = build(discipline=Discipline.ROWING)
    secrets = fake.seed_tokens()
    first = await make(secrets).deliver(
        delivery(data=dump_fit(activity, device=fit_device_for(Discipline.ROWING)))
    )
    honest = dump_fit(activity)  # the same workout, written for another device
    again = await make(secrets, device="none").deliver(delivery(data=honest, delivery_id=2))
    assert again.status_code == 409 and again.external_id == first.external_id
    shift = timedelta(hours=2)  # the next day's row
    later = activity.model_copy(
        update={"start": activity.start + shift, "end": activity.end + shift}
    )
    third = await make(secrets).deliver(delivery(data=dump_fit(later), delivery_id=3))
    assert third.status_code == 201 and third.external_id != first.external_id


async def test_still_processing_records_the_upload_id(make: Any, fake: FakeGarmin) -> None:
    fake.processing = True
    result = await make(fake.seed_tokens()).deliver(delivery())
    assert result.status_code == 202
    assert result.external_id == f"upload:{fake.next_upload_id - 1}"


async def test_import_failure_is_permanent(make: Any, fake: FakeGarmin) -> None:
    fake.reject_file = "Invalid or unsupported file"
    with pytest.raises(PermanentFailure, match="400: Invalid or unsupported file"):
        await make(fake.seed_tokens()).deliver(delivery())


async def test_tcx_goes_to_the_tcx_path_and_json_is_refused(make: Any, fake: FakeGarmin) -> None:
    await make(fake.seed_tokens()).deliver(delivery(fmt="tcx"))
    assert fake.calls["POST /upload-service/upload/.tcx"] == 1
    with pytest.raises(PermanentFailure, match="'json'"):
        await make(fake.seed_tokens()).deliver(delivery(fmt="json"))


async def test_disabled_sends_nothing(make: Any, fake: FakeGarmin) -> None:
    with pytest.raises(PermanentFailure, match="PELOSYNC_GARMIN_ENABLED"):
        await make(fake.seed_tokens(), enabled=False).deliver(delivery())
    with pytest.raises(PermanentFailure):
        await make(fake.seed_tokens(), enabled=False).ping()
    assert sum(fake.calls.values()) == 0


def test_from_settings(http: httpx.AsyncClient) -> None:
    settings = Settings(_env_file=None, garmin_enabled=True)
    kind = GarminDestination.from_settings(http, GarminConfig(), {}, settings)
    assert kind._enabled and kind._upload_url == settings.garmin_upload_url
    assert Settings(_env_file=None).garmin_enabled is False


# --- tokens -----------------------------------------------------------------------------------


async def test_401_refreshes_once_with_the_di_grant(make: Any, fake: FakeGarmin) -> None:
    fake.revoke_on_refresh = True
    secrets = fake.seed_tokens()
    fake.access_tokens.clear()  # the access token was revoked, the refresh token still works
    result = await make(secrets).deliver(delivery())
    assert fake.calls["token"] == 1 and fake.calls[UPLOAD_FIT] == 2
    auth, form, headers = fake.token_requests[0]
    assert auth == "Basic " + base64.b64encode(f"{CLIENT_ID}:".encode()).decode()
    assert form == {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,  # read from the access token's claims
        "refresh_token": secrets["refresh_token"],
    }
    # The headers of Garmin Connect Mobile for Android, as python-garminconnect sends them.
    assert headers["user-agent"] == "GCM-Android-5.23"
    assert headers["x-garmin-client-platform"] == "Android"
    assert headers["x-garmin-paired-app-version"] == headers["x-app-ver"] == "10861"
    assert headers["x-gcexperience"] == "GC5" and headers["x-lang"] == "en"
    new = result.updated_secrets
    assert new is not None and result.external_id is not None
    assert new["refresh_token"] in fake.refresh_tokens
    assert secrets["refresh_token"] not in fake.refresh_tokens
    assert new["access_token"] == fake.imports[0].headers["authorization"].removeprefix("Bearer ")
    assert new["client_id"] == CLIENT_ID and new["expires_at"] > 0
    # The refresh token's lifetime counts from the sign-in; Garmin says when it ends.
    assert new["refresh_token_expires_at"] == fake.refresh_tokens[new["refresh_token"]][1]


async def test_401_without_refresh_token_needs_reauthorization(make: Any, fake: FakeGarmin) -> None:
    with pytest.raises(NeedsReauthorization, match="new service ticket or token file"):
        await make({"access_token": "opaque-token-not-a-jwt"}).deliver(delivery())
    assert fake.calls["token"] == 0


async def test_401_after_refresh_needs_reauthorization_and_keeps_rotation(
    make: Any, fake: FakeGarmin
) -> None:
    secrets = fake.seed_tokens()
    fake.reject_api_tokens = True
    with pytest.raises(NeedsReauthorization) as caught:
        await make(secrets).deliver(delivery())
    assert fake.calls["token"] == 1 and fake.calls[UPLOAD_FIT] == 2
    assert caught.value.updated_secrets is not None
    assert caught.value.updated_secrets["refresh_token"] in fake.refresh_tokens


async def test_token_expiring_soon_is_refreshed_first(
    make: Any, fake: FakeGarmin, clock: FakeClock
) -> None:
    secrets = fake.seed_tokens(expires_in=60)  # exp claim one minute ahead
    assert jwt_claims(secrets["access_token"])["exp"] == int(clock.epoch()) + 60
    result = await make(secrets).deliver(delivery())
    assert fake.calls["token"] == 1 and fake.calls[UPLOAD_FIT] == 1
    assert result.updated_secrets is not None
    assert result.updated_secrets["expires_at"] == int(clock.epoch()) + 86400


async def test_refused_refresh_needs_reauthorization(make: Any, fake: FakeGarmin) -> None:
    secrets = {
        "access_token": make_jwt({"client_id": CLIENT_ID, "exp": 1}),
        "refresh_token": "long-expired-refresh-token",
    }
    with pytest.raises(NeedsReauthorization, match="refused the refresh token"):
        await make(secrets).deliver(delivery())
    assert fake.calls[UPLOAD_FIT] == 0


async def test_429_is_postponed(make: Any, fake: FakeGarmin) -> None:
    fake.fault("POST", "/upload-service", 429, {"message": "Too Many Requests"})
    with pytest.raises(Postponed) as caught:
        await make(fake.seed_tokens()).deliver(delivery())
    assert caught.value.retry_after == 900.0
    fake.fault("POST", "/upload-service", 429, {}, {"Retry-After": "30"})
    with pytest.raises(Postponed) as caught:
        await make(fake.seed_tokens()).deliver(delivery())
    assert caught.value.retry_after == 30.0


async def test_server_error_is_retryable(make: Any, fake: FakeGarmin) -> None:
    fake.fault("POST", "/upload-service", 502, {"message": "Bad Gateway"})
    with pytest.raises(DeliveryError) as caught:
        await make(fake.seed_tokens()).deliver(delivery())
    assert type(caught.value) is DeliveryError and caught.value.retryable


async def test_ping(make: Any, fake: FakeGarmin) -> None:
    result = await make(fake.seed_tokens()).ping()
    assert result.external_id == "alex_rides"


async def test_no_secret_in_errors_or_logs(
    make: Any, fake: FakeGarmin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = fake.seed_tokens()
    fake.access_tokens.clear()
    errors: list[DeliveryError] = []
    with structlog.testing.capture_logs() as logs:
        refreshed = await make(secrets).ping()
        new = refreshed.updated_secrets or {}
        # A server error that echoes the bearer token back.
        fake.fault("POST", "/upload-service", 500, {"echo": new["access_token"]})
        with pytest.raises(DeliveryError) as caught:
            await make(new).deliver(delivery())
        errors.append(caught.value)
        fake.reject_api_tokens = True
        with pytest.raises(NeedsReauthorization) as refused:
            await make(new).deliver(delivery())
        errors.append(refused.value)
    assert "[redacted]" in (errors[0].response_excerpt or "")
    known = [secrets["access_token"], secrets["refresh_token"], *fake.access_tokens]
    known += list(fake.refresh_tokens)
    texts = [repr(logs), caplog.text, *(error_text(e) for e in errors)]
    assert leaked(known, *texts) == []
