"""The intervals.icu kind against the loopback fake: auth headers, the upload path and fields,
duplicates, retries that find the earlier upload, status mapping, and no secret leaks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import structlog
from pydantic import ValidationError

from service.destinations.kinds.base import (
    DeliveryError,
    NeedsReauthorization,
    PermanentFailure,
    Postponed,
)
from service.destinations.kinds.intervals import (
    IntervalsConfig,
    IntervalsDestination,
    basic_auth_header,
)
from tests.destinations.fakes.fake_intervals import (
    API_KEY,
    ATHLETE_ID,
    OAUTH_TOKEN,
    FakeIntervals,
)
from tests.destinations.fakes.support import delivery, error_text, leaked
from tests.support.clock import FakeClock
from tests.support.servers import Switch, serve

UPLOADS = "POST /api/v1/athlete/0/activities"


@pytest.fixture(scope="module")
def intervals_server() -> Iterator[tuple[str, Switch]]:
    with serve("intervals") as served:
        yield served


@pytest.fixture
def fake(intervals_server: tuple[str, Switch]) -> FakeIntervals:
    fake = FakeIntervals()
    intervals_server[1].app = fake.app()
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def make(http: httpx.AsyncClient, intervals_server: tuple[str, Switch], fake: FakeIntervals) -> Any:
    def make(secrets: dict[str, Any] | None = None, **config: Any) -> IntervalsDestination:
        return IntervalsDestination(
            http,
            IntervalsConfig(**config),
            {"api_key": API_KEY} if secrets is None else secrets,
            api_url=intervals_server[0],
            clock=FakeClock(),
        )

    return make


def test_basic_auth_header_is_api_key_user_and_key_password() -> None:
    assert basic_auth_header("abc") == "Basic QVBJX0tFWTphYmM="


def test_athlete_id_is_validated() -> None:
    assert IntervalsConfig().athlete_id == "0"
    assert IntervalsConfig(athlete_id="i123").athlete_id == "i123"
    with pytest.raises(ValidationError, match="athlete_id"):
        IntervalsConfig(athlete_id="../admin")


async def test_upload_path_fields_and_basic_auth(make: Any, fake: FakeIntervals) -> None:
    request = delivery()
    result = await make().deliver(request)
    assert fake.calls[UPLOADS] == 1
    assert fake.authorizations == [basic_auth_header(API_KEY)]
    (activity,) = fake.activities.values()
    assert activity.data == request.file.data
    assert activity.filename == request.file.filename
    assert activity.name == "30 min Power Zone Ride"
    assert (
        activity.description == "Cycling class with Matt Wilpers\nSynced from Peloton by pelosync"
    )
    assert activity.external_id == "pelosync-f00dfeed0123456789abcdef01234567-fit"
    assert result.external_id == activity.id == "i1001"
    assert result.status_code == 201


async def test_bearer_token_and_explicit_athlete(make: Any, fake: FakeIntervals) -> None:
    kind = make({"access_token": OAUTH_TOKEN}, athlete_id=ATHLETE_ID)
    result = await kind.deliver(delivery(fmt="tcx"))
    assert fake.calls[f"POST /api/v1/athlete/{ATHLETE_ID}/activities"] == 1
    assert fake.authorizations == [f"Bearer {OAUTH_TOKEN}"]
    assert result.external_id == "i1001"


async def test_duplicate_is_a_200_naming_the_existing_activity(
    make: Any, fake: FakeIntervals
) -> None:
    first = await make().deliver(delivery(delivery_id=1))
    again = await make().deliver(delivery(delivery_id=2))
    assert first.status_code == 201 and again.status_code == 200
    assert again.external_id == first.external_id and len(fake.activities) == 1
    assert (
        again.response_excerpt
        == f"intervals.icu has this file already, as activity {first.external_id}"
    )
    assert fake.calls["GET /api/v1/athlete/0/activities"] == 0


async def test_file_already_there_from_another_source_is_delivered_not_retried(
    make: Any, fake: FakeIntervals
) -> None:
    # The watch's copy got there first, with its own external_id: ours finds nothing by
    # external_id, so only the 200's own answer can name it.
    request = delivery(attempt=2)
    existing = fake.add_existing(request.file.data, external_id="ride.fit")
    result = await make().deliver(request)
    assert result.status_code == 200 and result.external_id == existing.id
    assert len(fake.activities) == 1 and fake.calls[UPLOADS] == 1


async def test_error_bodies_that_are_arrays_are_named(make: Any, fake: FakeIntervals) -> None:
    fake.fault("POST", "/activities", 422, [{"status": 422, "error": "Name is too long"}])
    with pytest.raises(PermanentFailure, match="HTTP 422.*Name is too long"):
        await make().deliver(delivery())
    fake.fault("POST", "/activities", 500, ["not an object"])
    with pytest.raises(DeliveryError, match=r"HTTP 500\)$") as caught:
        await make().deliver(delivery())
    assert caught.value.retryable


async def test_retry_finds_the_earlier_upload_instead_of_uploading(
    make: Any, fake: FakeIntervals
) -> None:
    first = await make().deliver(delivery())
    retry = await make().deliver(delivery(attempt=2))
    assert retry.external_id == first.external_id
    assert fake.calls[UPLOADS] == 1
    lookup = fake.queries[-1]
    assert lookup == {"oldest": "2026-02-28", "newest": "2026-03-02"}


async def test_retry_uploads_when_nothing_is_there(make: Any, fake: FakeIntervals) -> None:
    result = await make().deliver(delivery(attempt=3))
    assert fake.calls["GET /api/v1/athlete/0/activities"] == 1
    assert fake.calls[UPLOADS] == 1 and result.external_id == "i1001"


@pytest.mark.parametrize(
    ("status", "body", "error", "retryable"),
    [
        (401, {"status": 401, "error": "Unauthorized"}, NeedsReauthorization, False),
        (403, {"status": 403, "error": "Access denied"}, NeedsReauthorization, False),
        (503, {"status": 503, "error": "Down for maintenance"}, DeliveryError, True),
        (422, {"status": 422, "error": "File type not supported"}, PermanentFailure, False),
    ],
)
async def test_status_mapping(
    make: Any,
    fake: FakeIntervals,
    status: int,
    body: dict[str, Any],
    error: type[DeliveryError],
    retryable: bool,
) -> None:
    fake.fault("POST", "/activities", status, body)
    with pytest.raises(error) as caught:
        await make().deliver(delivery())
    assert type(caught.value) is error and caught.value.retryable is retryable
    assert caught.value.remote_status == status
    assert body["error"] in str(caught.value)


async def test_429_is_postponed_for_retry_after(make: Any, fake: FakeIntervals) -> None:
    fake.fault("POST", "/activities", 429, {"error": "slow down"}, {"Retry-After": "120"})
    with pytest.raises(Postponed) as caught:
        await make().deliver(delivery())
    assert caught.value.retry_after == 120.0 and caught.value.remote_status == 429


async def test_wrong_key_needs_reauthorization(make: Any, fake: FakeIntervals) -> None:
    with pytest.raises(NeedsReauthorization, match="HTTP 401"):
        await make({"api_key": "wrong-key-000000"}).deliver(delivery())
    assert fake.activities == {}


async def test_missing_credentials_and_json_are_refused_locally(
    make: Any, fake: FakeIntervals
) -> None:
    with pytest.raises(NeedsReauthorization, match="api_key"):
        await make({}).deliver(delivery())
    with pytest.raises(PermanentFailure, match="'json'"):
        await make().deliver(delivery(fmt="json"))
    assert sum(fake.calls.values()) == 0


async def test_ping_gets_the_athlete(make: Any, fake: FakeIntervals) -> None:
    result = await make().ping()
    assert result.external_id == ATHLETE_ID
    assert fake.calls["GET /api/v1/athlete/0"] == 1
    fake.fault("GET", "/api/v1/athlete/0", 401, {"error": "Unauthorized"})
    with pytest.raises(NeedsReauthorization):
        await make().ping()


async def test_no_secret_in_errors_or_logs(
    make: Any, fake: FakeIntervals, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[DeliveryError] = []
    with structlog.testing.capture_logs() as logs:
        for secret, secrets in (
            (API_KEY, {"api_key": API_KEY}),
            (OAUTH_TOKEN, {"access_token": OAUTH_TOKEN}),
        ):
            # A server that echoes the credential it was sent.
            fake.fault("POST", "/activities", 500, {"error": f"bad request from {secret}"})
            with pytest.raises(DeliveryError) as caught:
                await make(secrets).deliver(delivery())
            errors.append(caught.value)
    assert all("[redacted]" in (e.response_excerpt or "") for e in errors)
    header = basic_auth_header(API_KEY)
    texts = [repr(logs), caplog.text, *(error_text(e) for e in errors)]
    assert leaked([API_KEY, OAUTH_TOKEN, header.split()[1]], *texts) == []
