"""The Strava kind against the loopback fake Strava: OAuth, uploads, polling, duplicates,
resuming, rate limits, and no secret in any error or log."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog
from pydantic import SecretStr

from service.config import Settings
from service.destinations.kinds.base import (
    DeliveryError,
    NeedsReauthorization,
    PermanentFailure,
    Postponed,
)
from service.destinations.kinds.strava import (
    PENDING_KEY,
    StravaApp,
    StravaConfig,
    StravaDestination,
    UploadStillProcessing,
)
from service.destinations.kinds.strava_oauth import (
    InsufficientScope,
    StravaOAuth,
    authorize_url,
    check_granted_scope,
)
from service.destinations.kinds.strava_state import InvalidOAuthState, OAuthStateSigner
from service.destinations.ratelimit import StravaRateLimiter
from service.errors import InvalidInput
from tests.destinations.fakes.fake_strava import ATHLETE, CLIENT_ID, CLIENT_SECRET, FakeStrava
from tests.destinations.fakes.support import delivery, error_text, leaked
from tests.support.clock import FakeClock, RecordingSleep
from tests.support.servers import Switch, serve


@pytest.fixture(scope="module")
def strava_server() -> Iterator[tuple[str, Switch]]:
    with serve("strava") as served:
        yield served


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep(clock: FakeClock) -> RecordingSleep:
    return RecordingSleep(clock)


@pytest.fixture
def fake(strava_server: tuple[str, Switch], clock: FakeClock) -> FakeStrava:
    fake = FakeStrava(now=clock.epoch)
    strava_server[1].app = fake.app()
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def limiter(clock: FakeClock) -> StravaRateLimiter:
    return StravaRateLimiter(clock=clock)


@pytest.fixture
def app(
    http: httpx.AsyncClient,
    strava_server: tuple[str, Switch],
    limiter: StravaRateLimiter,
    clock: FakeClock,
) -> StravaApp:
    base = strava_server[0]
    oauth = StravaOAuth(
        http,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        oauth_url=f"{base}/oauth",
        clock=clock,
    )
    return StravaApp(oauth, limiter, f"{base}/api/v3")


def destination(
    http: httpx.AsyncClient,
    app: StravaApp,
    secrets: dict[str, Any],
    clock: FakeClock,
    sleep: RecordingSleep,
    **config: Any,
) -> StravaDestination:
    return StravaDestination(
        http, StravaConfig(**config), secrets, app=app, clock=clock, sleep=sleep
    )


# --- OAuth ------------------------------------------------------------------------------------


def test_authorize_url_has_strava_parameters() -> None:
    url = authorize_url("12345", "https://sync.example/strava/callback", "st4te")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "www.strava.com",
        "/oauth/authorize",
    )
    assert parse_qs(parts.query) == {
        "client_id": ["12345"],
        "redirect_uri": ["https://sync.example/strava/callback"],
        "response_type": ["code"],
        "approval_prompt": ["auto"],
        "scope": ["activity:write,read"],
        "state": ["st4te"],
    }
    with pytest.raises(InvalidInput, match="client id"):
        authorize_url("", "https://x/cb", "s")


def test_state_is_signed_and_expires(clock: FakeClock) -> None:
    signer = OAuthStateSigner("a-long-enough-service-secret", clock=clock)
    state = signer.sign({"destination": 7, "nonce": "n0"})
    assert "destination" not in state  # encrypted, not just signed
    assert signer.verify(state) == {"destination": 7, "nonce": "n0"}
    other = OAuthStateSigner("another-service-secret-entirely", clock=clock)
    with pytest.raises(InvalidOAuthState):
        other.verify(state)
    with pytest.raises(InvalidOAuthState):
        signer.verify(state[:-4] + "AAAA")
    clock.advance(601)
    with pytest.raises(InvalidOAuthState, match="expired"):
        signer.verify(state)


def test_granted_scope_must_include_activity_write() -> None:
    check_granted_scope("read,activity:write")
    with pytest.raises(InsufficientScope, match="activity:write"):
        check_granted_scope("read,activity:read")
    with pytest.raises(InsufficientScope, match="nothing"):
        check_granted_scope(None)


async def test_exchange_code_returns_tokens_and_athlete(
    app: StravaApp, fake: FakeStrava, clock: FakeClock
) -> None:
    code = fake.issue_code()
    tokens = await app.oauth.exchange_code(code)
    assert tokens.access_token in fake.access_tokens
    assert tokens.refresh_token in fake.refresh_tokens
    assert tokens.expires_at == int(clock.epoch()) + 21600
    assert tokens.athlete_id == ATHLETE["id"]
    secrets = tokens.as_secrets()
    assert secrets["athlete_id"] == 4242 and secrets["refresh_token"] == tokens.refresh_token
    assert fake.token_requests[0] == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": code,
    }
    assert tokens.access_token not in repr(tokens)
    with pytest.raises(NeedsReauthorization, match="authorization code") as caught:
        await app.oauth.exchange_code(code)  # codes are single-use
    assert code not in error_text(caught.value)


async def test_wrong_client_secret_is_a_retryable_configuration_error(
    http: httpx.AsyncClient, strava_server: tuple[str, Switch], fake: FakeStrava
) -> None:
    oauth = StravaOAuth(
        http,
        client_id=CLIENT_ID,
        client_secret="not-the-secret-at-all",
        oauth_url=f"{strava_server[0]}/oauth",
    )
    with pytest.raises(DeliveryError, match="PELOSYNC_STRAVA_CLIENT_SECRET") as caught:
        await oauth.exchange_code(fake.issue_code())
    assert type(caught.value) is DeliveryError and caught.value.retryable


def test_app_from_settings_requires_client_credentials(http: httpx.AsyncClient) -> None:
    with pytest.raises(InvalidInput, match="PELOSYNC_STRAVA_CLIENT_ID"):
        StravaApp.from_settings(http, Settings(_env_file=None))
    settings = Settings(
        _env_file=None,
        strava_client_id="99",
        strava_client_secret=SecretStr("s3cret-value-123"),
        strava_api_url="https://strava.test/api/v3/",
    )
    app = StravaApp.from_settings(http, settings)
    assert app.api_url == "https://strava.test/api/v3" and app.oauth.client_id == "99"


async def test_token_refreshed_ahead_of_expiry_and_rotation_returned(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    secrets = fake.seed_tokens(expires_in=100)  # inside the 10-minute margin
    started = int(clock.epoch())
    kind = destination(http, app, secrets, clock, sleep)
    result = await kind.deliver(delivery())
    assert fake.calls["token:refresh_token"] == 1
    new = result.updated_secrets
    assert new is not None
    assert new["refresh_token"] != secrets["refresh_token"]
    assert new["refresh_token"] in fake.refresh_tokens
    assert secrets["refresh_token"] not in fake.refresh_tokens  # rotated: the old one is dead
    assert new["expires_at"] == started + 21600
    assert new["athlete_id"] == 4242 and PENDING_KEY not in new
    assert set(fake.bearer_tokens) == {new["access_token"]}


async def test_fresh_token_is_not_refreshed(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    result = await destination(http, app, fake.seed_tokens(), clock, sleep).ping()
    assert fake.calls["token:refresh_token"] == 0
    assert result.updated_secrets is None and result.external_id == "4242"


async def test_401_refreshes_once_then_succeeds(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    secrets = fake.seed_tokens()
    fake.revoke_access_tokens()
    result = await destination(http, app, secrets, clock, sleep).ping()
    assert fake.calls["token:refresh_token"] == 1
    assert fake.calls["GET /api/v3/athlete"] == 2
    assert result.updated_secrets is not None
    assert result.updated_secrets["access_token"] == fake.bearer_tokens[-1]
    assert result.updated_secrets["access_token"] != secrets["access_token"]


async def test_401_after_refresh_needs_reauthorization_and_keeps_rotation(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    secrets = fake.seed_tokens()
    fake.reject_api_tokens = True
    with pytest.raises(NeedsReauthorization) as caught:
        await destination(http, app, secrets, clock, sleep).deliver(delivery())
    assert fake.calls["token:refresh_token"] == 1
    assert caught.value.remote_status == 401 and not caught.value.retryable
    # The refresh rotated the refresh token: losing it would strand the destination.
    assert caught.value.updated_secrets is not None
    assert caught.value.updated_secrets["refresh_token"] in fake.refresh_tokens
    assert fake.upload_list == []


async def test_refused_refresh_token_needs_reauthorization(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    secrets = {"access_token": "expired-access-0000", "refresh_token": "revoked-refresh-0000"}
    with pytest.raises(NeedsReauthorization, match="refresh token") as caught:
        await destination(http, app, secrets, clock, sleep).ping()
    assert "RefreshToken.refresh_token invalid" in str(caught.value)
    assert caught.value.updated_secrets is None
    assert fake.calls["GET /api/v3/athlete"] == 0


async def test_concurrent_refreshes_share_one_request(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    secrets = fake.seed_tokens(expires_in=10)
    first = destination(http, app, secrets, clock, sleep)
    second = destination(http, app, secrets, clock, sleep)
    results = await asyncio.gather(first.ping(), second.ping())
    assert fake.calls["token:refresh_token"] == 1
    rotated = {r.updated_secrets["refresh_token"] for r in results if r.updated_secrets}
    assert len(rotated) == 1 and rotated <= fake.refresh_tokens.keys()
    # A third destination still holding the old refresh token gets the same rotation.
    late = await destination(http, app, secrets, clock, sleep).ping()
    assert late.updated_secrets is not None
    assert late.updated_secrets["refresh_token"] in rotated
    assert fake.calls["token:refresh_token"] == 1


# --- uploads ----------------------------------------------------------------------------------


async def test_fit_upload_fields_and_polling_to_activity(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    request = delivery()
    result = await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(request)
    (upload,) = fake.upload_list
    assert upload.data == request.file.data
    assert upload.filename == request.file.filename
    assert upload.fields == {
        "data_type": "fit",
        "name": "30 min Power Zone Ride",
        "description": "Cycling class with Matt Wilpers\nSynced from Peloton by pelosync",
        "trainer": "1",
        "commute": "0",
        "external_id": "pelosync-f00dfeed0123456789abcdef01234567-fit",
    }
    assert result.external_id == str(fake.next_activity_id + upload.id)
    assert result.status_code == 200
    assert sleep.waits == [2.0, 3.2]  # first poll after 2 s, then backing off
    assert fake.calls[f"GET /api/v3/uploads/{upload.id}"] == 2
    assert result.updated_secrets is None  # nothing rotated, nothing left pending
    assert fake.problems == []


async def test_tcx_is_gzipped_and_outdoor_is_not_trainer(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    request = delivery(fmt="tcx", is_outdoor=True, discipline="running", instructor=None)
    await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(request)
    (upload,) = fake.upload_list
    assert upload.fields["data_type"] == "tcx.gz"
    assert upload.filename == request.file.filename + ".gz"
    assert gzip.decompress(upload.data) == request.file.data
    assert len(upload.data) < len(request.file.data)
    assert upload.fields["trainer"] == "0"
    assert upload.fields["external_id"].endswith("-tcx")
    assert upload.fields["description"] == "Running\nSynced from Peloton by pelosync"


async def test_gzip_can_be_turned_off(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    request = delivery(fmt="gpx")
    kind = destination(http, app, fake.seed_tokens(), clock, sleep, gzip_text=False)
    await kind.deliver(request)
    (upload,) = fake.upload_list
    assert upload.fields["data_type"] == "gpx" and upload.data == request.file.data


async def test_json_is_refused_without_a_request(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    with pytest.raises(PermanentFailure, match="not 'json'"):
        await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery(fmt="json"))
    assert sum(fake.calls.values()) == 0


@pytest.mark.parametrize("outcome", ["duplicate", "duplicate_link"])
async def test_duplicate_is_delivered_with_the_existing_activity(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
    outcome: str,
) -> None:
    fake.outcome = outcome
    result = await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery())
    assert result.external_id == str(fake.existing_activity_id)
    assert result.response_excerpt is not None and "duplicate of" in result.response_excerpt


async def test_duplicate_in_the_upload_answer_needs_no_polling(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.immediate_error = "ride.fit duplicate of activity 31337"
    result = await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery())
    assert result.external_id == "31337" and sleep.waits == []


async def test_duplicate_refusal_of_the_upload_itself(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.fault("POST", "/api/v3/uploads", 400, {"error": "ride.fit duplicate of activity 555"})
    result = await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery())
    assert result.external_id == "555" and result.status_code == 400
    # A server error that happens to say "duplicate" is not a duplicate.
    fake.fault("POST", "/api/v3/uploads", 500, {"error": "duplicate key value violates"})
    with pytest.raises(DeliveryError) as caught:
        await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery())
    assert caught.value.retryable and caught.value.remote_status == 500


async def test_processing_error_is_permanent_with_stravas_message(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.outcome = "error"
    with pytest.raises(PermanentFailure) as caught:
        await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery())
    assert fake.error_message in str(caught.value)
    assert not caught.value.retryable
    assert caught.value.updated_secrets is None  # the upload resolved: nothing to resume


async def test_deleted_activity_is_permanent(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.outcome = "deleted"
    with pytest.raises(PermanentFailure, match="deleted"):
        await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery())


async def test_polling_timeout_is_resumed_without_uploading_again(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.processing_polls = 1000
    secrets = fake.seed_tokens()
    request = delivery(delivery_id=77)
    with pytest.raises(UploadStillProcessing) as caught:
        await destination(http, app, secrets, clock, sleep).deliver(request)
    (upload,) = fake.upload_list
    error = caught.value
    assert error.upload_id == upload.id and str(upload.id) in str(error)
    assert error.retryable and error.retry_after == 60.0
    assert sum(sleep.waits) <= 60.0 and len(sleep.waits) >= 3
    assert error.updated_secrets is not None
    assert error.updated_secrets[PENDING_KEY]["77"]["upload_id"] == upload.id
    assert error.updated_secrets["refresh_token"] == secrets["refresh_token"]

    # The retry polls the stored upload (at once) and never posts the file again.
    fake.processing_polls = upload.polls
    sleep.waits.clear()
    retry = delivery(delivery_id=77, attempt=2)
    result = await destination(http, app, error.updated_secrets, clock, sleep).deliver(retry)
    assert len(fake.uploads) == 1 and fake.calls["POST /api/v3/uploads"] == 1
    assert result.external_id == str(fake.next_activity_id + upload.id)
    assert sleep.waits == []
    assert result.updated_secrets is not None and PENDING_KEY not in result.updated_secrets


async def test_rate_limit_while_polling_keeps_the_upload_to_resume(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.fault("GET", "/api/v3/uploads/", 429, {"message": "Rate Limit Exceeded"})
    with pytest.raises(Postponed) as caught:
        await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery())
    (upload,) = fake.upload_list
    assert caught.value.updated_secrets is not None
    assert caught.value.updated_secrets[PENDING_KEY]["41"]["upload_id"] == upload.id


async def test_resume_of_an_unknown_upload_uploads_again(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    secrets = {**fake.seed_tokens(), PENDING_KEY: {"41": {"upload_id": 404, "since": 1}}}
    result = await destination(http, app, secrets, clock, sleep).deliver(delivery(attempt=2))
    assert fake.calls["GET /api/v3/uploads/404"] == 1
    (upload,) = fake.upload_list
    assert result.external_id == str(fake.next_activity_id + upload.id)
    assert result.updated_secrets is not None and PENDING_KEY not in result.updated_secrets


async def test_server_error_on_upload_is_retryable(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.fault("POST", "/api/v3/uploads", 503, {"message": "Service Unavailable"})
    with pytest.raises(DeliveryError) as caught:
        await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery())
    assert type(caught.value) is DeliveryError and caught.value.remote_status == 503
    assert caught.value.retryable


async def test_missing_write_scope_names_the_scope_without_refreshing(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    # The athlete unticked "Upload your activities": Strava answers the upload 401 naming the
    # permission. A refresh keeps the same scopes, so none is spent.
    secrets = fake.seed_tokens(scope="read")
    with pytest.raises(NeedsReauthorization, match="'activity:write' permission") as caught:
        await destination(http, app, secrets, clock, sleep).deliver(delivery())
    assert caught.value.remote_status == 401 and not caught.value.retryable
    assert "Upload your activities" in str(caught.value)
    assert fake.calls["token:refresh_token"] == 0 and fake.calls["POST /api/v3/uploads"] == 1
    assert fake.upload_list == [] and caught.value.updated_secrets is None


async def test_unusable_secrets_need_reauthorization(
    http: httpx.AsyncClient, app: StravaApp, clock: FakeClock, sleep: RecordingSleep
) -> None:
    with pytest.raises(NeedsReauthorization, match="refresh_token"):
        await destination(http, app, {}, clock, sleep).deliver(delivery())


# --- rate limits ------------------------------------------------------------------------------


async def test_rate_limit_headers_are_read_into_the_shared_tracker(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    limiter: StravaRateLimiter,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.limits, fake.usage = (600, 30000), [40, 900]
    fake.read_limits, fake.read_usage = (300, 15000), [12, 345]
    await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery())
    snapshot = limiter.snapshot()
    assert snapshot.overall_limit == (600, 30000)
    assert snapshot.overall_usage == tuple(fake.usage) == (43, 903)  # upload + 2 polls
    assert snapshot.read_limit == (300, 15000)
    assert snapshot.read_usage == tuple(fake.read_usage) == (14, 347)  # the polls only


async def test_one_destination_exhausts_the_window_the_other_is_postponed(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.usage = [198, 500]
    first = destination(http, app, fake.seed_tokens(), clock, sleep)
    second = destination(http, app, fake.seed_tokens(), clock, sleep)
    fake.processing_polls = 0
    done = await first.deliver(delivery(delivery_id=1))  # upload + one poll: 200/200
    assert done.external_id is not None
    clock.now = datetime(2026, 3, 1, 12, 7, 30, tzinfo=UTC)
    requests_before = sum(fake.calls.values())
    with pytest.raises(Postponed) as caught:
        await second.deliver(delivery(delivery_id=2))
    assert sum(fake.calls.values()) == requests_before  # refused before sending anything
    assert caught.value.retry_after == 450.0  # until 12:15 UTC
    assert "12:15 UTC" in str(caught.value)
    assert not isinstance(caught.value, PermanentFailure) and caught.value.retryable
    clock.advance(450)
    fake.usage[0] = 0  # Strava's new window
    again = await second.deliver(delivery(delivery_id=2))
    assert again.external_id is not None


async def test_daily_limit_postpones_until_midnight_utc(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.usage = [3, 1999]
    kind = destination(http, app, fake.seed_tokens(), clock, sleep)
    await kind.ping()
    with pytest.raises(Postponed) as caught:
        await kind.ping()
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    assert caught.value.retry_after == (midnight - clock.now).total_seconds()


async def test_429_is_postponed_not_failed(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    limiter: StravaRateLimiter,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> None:
    fake.fault("POST", "/api/v3/uploads", 429, {"message": "Rate Limit Exceeded"})
    with pytest.raises(Postponed) as caught:
        await destination(http, app, fake.seed_tokens(), clock, sleep).deliver(delivery())
    assert caught.value.remote_status == 429 and caught.value.retry_after == 450.0
    assert fake.upload_list == []
    # The tracker now holds further requests until the window resets.
    assert limiter.wait_time(upload=True) == 450.0


def test_tracker_windows_roll_over(clock: FakeClock) -> None:
    limiter = StravaRateLimiter(clock=clock, overall_limits=(2, 5), read_limits=(1, 5))
    assert limiter.try_acquire(upload=True) is None
    assert limiter.try_acquire(upload=False) is None  # counts overall and read
    assert limiter.try_acquire(upload=True) == 450.0  # 2/2 overall this quarter
    clock.advance(450)
    assert limiter.try_acquire(upload=False) is None
    assert limiter.try_acquire(upload=False) == 900.0  # read: 1/1
    assert limiter.snapshot().overall_usage == (1, 3)
    # Late, smaller usage from an older response does not lower the count; garbage is ignored.
    limiter.observe({"x-ratelimit-usage": "0,1", "x-ratelimit-limit": "nonsense"})
    assert limiter.snapshot().overall_usage == (1, 3)
    assert limiter.snapshot().overall_limit == (2, 5)


def test_tracker_429_without_headers_blocks_the_quarter(clock: FakeClock) -> None:
    limiter = StravaRateLimiter(clock=clock)
    assert limiter.exceeded({}, upload=True) == 450.0
    assert limiter.wait_time(upload=True) == 450.0
    clock.advance(450)
    assert limiter.wait_time(upload=True) is None


# --- secrets ----------------------------------------------------------------------------------


async def test_no_secret_in_errors_or_logs(
    http: httpx.AsyncClient,
    app: StravaApp,
    fake: FakeStrava,
    clock: FakeClock,
    sleep: RecordingSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = fake.seed_tokens(expires_in=5)
    errors: list[DeliveryError] = []
    with structlog.testing.capture_logs() as logs:
        fake.fault("POST", "/api/v3/uploads", 500, {"message": "Internal Error"})
        with pytest.raises(DeliveryError) as first:
            await destination(http, app, secrets, clock, sleep).deliver(delivery())
        errors.append(first.value)
        current = first.value.updated_secrets or {}  # refreshed ahead of expiry
        rotated = [current["access_token"], current["refresh_token"]]
        # A server error that echoes the tokens back.
        fake.fault("GET", "/api/v3/athlete", 502, {"token": rotated[0], "again": rotated[1]})
        with pytest.raises(DeliveryError) as echoed:
            await destination(http, app, current, clock, sleep).ping()
        errors.append(echoed.value)
        fake.reject_api_tokens = True
        with pytest.raises(NeedsReauthorization) as refused:
            await destination(http, app, current, clock, sleep).ping()
        errors.append(refused.value)
        bad = {"refresh_token": "revoked-refresh-token-123456", "expires_at": 0}
        with pytest.raises(NeedsReauthorization) as revoked:
            await destination(http, app, bad, clock, sleep).ping()
        errors.append(revoked.value)
    assert [type(e) for e in errors] == [
        DeliveryError,
        DeliveryError,
        NeedsReauthorization,
        NeedsReauthorization,
    ]
    assert errors[1].response_excerpt is not None and "[redacted]" in errors[1].response_excerpt
    everything = [repr(logs), caplog.text, *(error_text(e) for e in errors)]
    known = [
        secrets["access_token"],
        secrets["refresh_token"],
        *rotated,
        *fake.access_tokens,
        *fake.refresh_tokens,
        CLIENT_SECRET,
        "revoked-refresh-token-123456",
    ]
    assert leaked(known, *everything) == []
    assert any(entry["event"] == "strava.token.refreshed" for entry in logs)


def test_datetime_helper_is_consistent(clock: FakeClock) -> None:
    # The fixtures' clock starts 7.5 minutes into a quarter: the postponement figures above
    # rely on it.
    assert clock.now - clock.now.replace(minute=0, second=0) == timedelta(minutes=7, seconds=30)
