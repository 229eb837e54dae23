"""The Runalyze kind against the loopback fake: the token header, FIT and TCX uploads that the
fake decodes and the test compares with what was sent, following the background import,
duplicates, refused tokens and files, 429, 5xx, a 60-minute ride, and no secret leaks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import structlog
from pydantic import ValidationError

from service.convert.formats import render
from service.convert.model import Activity
from service.destinations.kinds.base import (
    DeliveryError,
    NeedsReauthorization,
    PermanentFailure,
    Postponed,
)
from service.destinations.kinds.runalyze import (
    DEFAULT_API_URL,
    RunalyzeConfig,
    RunalyzeDestination,
    RunalyzeSecrets,
)
from tests.convert.activities import build
from tests.destinations.fakes.fake_runalyze import TOKEN, FakeRunalyze
from tests.destinations.fakes.support import delivery, error_text, leaked
from tests.support.clock import FakeClock, RecordingSleep
from tests.support.servers import Switch, serve

UPLOADS = "POST /api/v1/activities/uploads"


@pytest.fixture(scope="module")
def runalyze_server() -> Iterator[tuple[str, Switch]]:
    with serve("runalyze") as served:
        yield served


@pytest.fixture
def fake(runalyze_server: tuple[str, Switch]) -> FakeRunalyze:
    fake = FakeRunalyze()
    runalyze_server[1].app = fake.app()
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def make(
    http: httpx.AsyncClient, runalyze_server: tuple[str, Switch], sleep: RecordingSleep
) -> Any:
    def make(secrets: dict[str, Any] | None = None, **config: Any) -> RunalyzeDestination:
        return RunalyzeDestination(
            http,
            RunalyzeConfig(**config),
            {"token": TOKEN} if secrets is None else secrets,
            api_url=f"{runalyze_server[0]}/api/v1",
            clock=FakeClock(),
            sleep=sleep,
        )

    return make


def ride(seconds: int) -> Activity:
    return build(seconds=seconds, laps=max(1, seconds // 600), calories=12.0 * seconds / 60)


def test_config_and_secrets_are_validated() -> None:
    assert DEFAULT_API_URL == "https://runalyze.com/api/v1"
    assert RunalyzeConfig().import_wait_s == 30.0
    with pytest.raises(ValidationError, match="import_wait_s"):
        RunalyzeConfig(import_wait_s=-1)
    with pytest.raises(ValidationError, match="unknown"):
        RunalyzeConfig.model_validate({"unknown": 1})
    assert RunalyzeSecrets(token=f"  {TOKEN}\n").token == TOKEN
    for bad in ("short", "has a space inside it", "x" * 300):
        with pytest.raises(ValidationError, match="personal-api") as caught:
            RunalyzeSecrets(token=bad)
        assert bad not in str(caught.value)  # hide_input_in_errors: a token is never echoed
    with pytest.raises(ValidationError, match="token"):
        RunalyzeSecrets.model_validate({})


@pytest.mark.parametrize("fmt", ["fit", "tcx"])
async def test_upload_is_decoded_by_the_fake_as_sent(
    make: Any, fake: FakeRunalyze, sleep: RecordingSleep, fmt: str
) -> None:
    activity = ride(600)
    request = delivery(fmt=fmt, data=render(activity, fmt))
    result = await make().deliver(request)
    assert fake.calls[UPLOADS] == 1 and fake.tokens[0] == TOKEN
    (upload,) = fake.uploads.values()
    assert upload.data == request.file.data and upload.filename == request.file.filename
    assert upload.title == "30 min Power Zone Ride"
    assert upload.note == "Cycling class with Matt Wilpers\nSynced from Peloton by pelosync"
    imported = upload.imported
    assert imported is not None and imported.kind == fmt
    assert imported.start == activity.start
    assert imported.duration_s == pytest.approx(600)
    assert imported.samples == len(activity.samples) == 600
    assert imported.sport == ("cycling" if fmt == "fit" else "Biking")
    assert result.external_id == str(upload.activity_id) == "90001"
    assert result.response_excerpt is not None
    assert "https://runalyze.com/activity/90001" in result.response_excerpt
    assert sleep.waits == [2.0]  # one poll, after the first wait


async def test_a_60_minute_ride_arrives_whole_in_both_formats(
    make: Any, fake: FakeRunalyze
) -> None:
    activity = ride(3600)
    for fmt in ("fit", "tcx"):
        data = render(activity, fmt)
        result = await make().deliver(delivery(fmt=fmt, data=data))
        (upload,) = [u for u in fake.uploads.values() if str(u.activity_id) == result.external_id]
        imported = upload.imported
        assert imported is not None and imported.kind == fmt and len(upload.data) > 50_000
        assert imported.start == activity.start
        assert imported.duration_s == pytest.approx(3600), fmt
        assert imported.samples == 3600, fmt
        assert imported.calories == pytest.approx(activity.summary.calories_kcal, abs=1), fmt
    assert [u.status for u in fake.uploads.values()] == ["successfully imported"] * 2


async def test_waits_for_the_background_import(
    make: Any, fake: FakeRunalyze, sleep: RecordingSleep
) -> None:
    fake.polls_before_import = 3
    result = await make().deliver(delivery(data=render(ride(60), "fit")))
    assert result.external_id == "90001"
    assert sleep.waits == [2.0, 5.0, 5.0, 5.0]
    assert fake.calls["GET /api/v1/activities/uploads/501"] == 4


async def test_still_queued_when_the_wait_is_over_is_delivered_as_queued(
    make: Any, fake: FakeRunalyze, sleep: RecordingSleep
) -> None:
    fake.never_imports = True
    result = await make(import_wait_s=12).deliver(delivery(data=render(ride(60), "fit")))
    assert result.external_id == "upload:501" and result.status_code == 201
    assert sleep.waits == [2.0, 5.0, 5.0] and sum(sleep.waits) <= 12
    assert fake.calls[UPLOADS] == 1


async def test_no_wait_delivers_the_queued_upload_at_once(
    make: Any, fake: FakeRunalyze, sleep: RecordingSleep
) -> None:
    result = await make(import_wait_s=0).deliver(delivery(data=render(ride(60), "fit")))
    assert result.external_id == "upload:501"
    assert sleep.waits == [] and fake.calls["GET /api/v1/activities/uploads/501"] == 0


async def test_duplicate_found_by_the_import_is_delivered(make: Any, fake: FakeRunalyze) -> None:
    data = render(ride(60), "fit")
    first = await make().deliver(delivery(delivery_id=1, data=data))
    again = await make().deliver(delivery(delivery_id=2, data=data))
    assert first.external_id == "90001"
    assert again.external_id is None
    assert again.response_excerpt is not None and "already" in again.response_excerpt
    assert len(fake.activities) == 1


async def test_duplicate_refused_at_once_is_delivered_with_the_existing_activity(
    make: Any, fake: FakeRunalyze
) -> None:
    fake.duplicate_mode = "conflict"
    data = render(ride(60), "tcx")
    first = await make().deliver(delivery(fmt="tcx", delivery_id=1, data=data))
    again = await make().deliver(delivery(fmt="tcx", delivery_id=2, data=data))
    assert again.status_code == 409 and again.external_id == first.external_id == "90001"
    assert len(fake.uploads) == 1


async def test_a_file_the_import_cannot_read_is_a_permanent_failure(
    make: Any, fake: FakeRunalyze
) -> None:
    with pytest.raises(PermanentFailure, match="could not import upload 501: Could not parse"):
        await make().deliver(delivery(data=b"not a FIT file at all"))


@pytest.mark.parametrize("status", [401, 403, 400])
async def test_a_refused_token_needs_reauthorization(
    make: Any, fake: FakeRunalyze, status: int
) -> None:
    fake.bad_token_status = status
    with pytest.raises(NeedsReauthorization) as caught:
        await make({"token": "wrong-token-0000"}).deliver(delivery(data=render(ride(60), "fit")))
    assert caught.value.remote_status == status and not caught.value.retryable
    assert "token" in str(caught.value)
    assert fake.uploads == {}


async def test_missing_token_and_other_formats_are_refused_locally(
    make: Any, fake: FakeRunalyze
) -> None:
    with pytest.raises(NeedsReauthorization, match="personal API token"):
        await make({}).deliver(delivery())
    for fmt in ("gpx", "json"):
        with pytest.raises(PermanentFailure, match=f"'{fmt}'"):
            await make().deliver(delivery(fmt=fmt))
    assert sum(fake.calls.values()) == 0


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (400, {"title": "An error occurred", "detail": "Unsupported file"}, "Unsupported file"),
        (
            422,
            {"status": 422, "violations": [{"propertyPath": "file", "message": "Too big."}]},
            "file: Too big.",
        ),
    ],
)
async def test_a_refused_upload_is_permanent(
    make: Any, fake: FakeRunalyze, status: int, body: dict[str, Any], shown: str
) -> None:
    fake.fault("POST", "/activities/uploads", status, body)
    with pytest.raises(PermanentFailure) as caught:
        await make().deliver(delivery())
    assert caught.value.remote_status == status and not caught.value.retryable
    assert shown in str(caught.value)


async def test_429_is_postponed_for_retry_after(make: Any, fake: FakeRunalyze) -> None:
    fake.fault("POST", "/activities/uploads", 429, {"message": "slow down"}, {"Retry-After": "90"})
    with pytest.raises(Postponed) as caught:
        await make().deliver(delivery())
    assert caught.value.retry_after == 90.0 and caught.value.remote_status == 429
    fake.fault("POST", "/activities/uploads", 429, {"message": "slow down"})
    with pytest.raises(Postponed) as caught:
        await make().deliver(delivery())
    assert caught.value.retry_after == 300.0


async def test_5xx_is_retried_and_the_retry_delivers(make: Any, fake: FakeRunalyze) -> None:
    fake.fault("POST", "/activities/uploads", 503, {"detail": "Down for maintenance"})
    request = delivery(data=render(ride(60), "fit"))
    with pytest.raises(DeliveryError) as caught:
        await make().deliver(request)
    assert type(caught.value) is DeliveryError and caught.value.retryable
    assert caught.value.remote_status == 503 and "Down for maintenance" in str(caught.value)
    # What the engine does next: the same delivery, attempt 2.
    retried = await make().deliver(delivery(attempt=2, data=request.file.data))
    assert retried.external_id == "90001" and fake.calls[UPLOADS] == 2


@pytest.mark.parametrize("status", [502, 429, 401, 404])
async def test_an_unreadable_status_delivers_the_accepted_upload_as_queued(
    make: Any, fake: FakeRunalyze, status: int
) -> None:
    """The file is Runalyze's once the upload is answered: failing the delivery then would
    only make the engine upload it again."""
    fake.fault("GET", "/activities/uploads/501", status, {"detail": "Bad gateway"})
    result = await make().deliver(delivery(data=render(ride(60), "fit")))
    assert result.external_id == "upload:501" and result.status_code == 201
    assert fake.calls[UPLOADS] == 1


async def test_an_unreachable_status_delivers_the_accepted_upload_as_queued(
    http: httpx.AsyncClient, fake: FakeRunalyze, runalyze_server: tuple[str, Switch]
) -> None:
    class StatusUnreachable(httpx.AsyncBaseTransport):
        """Loopback for the upload, a refused connection for the status."""

        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "GET":
                raise httpx.ConnectError("refused", request=request)
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    async with httpx.AsyncClient(transport=StatusUnreachable()) as client:
        kind = RunalyzeDestination(
            client,
            RunalyzeConfig(),
            {"token": TOKEN},
            api_url=f"{runalyze_server[0]}/api/v1",
            sleep=RecordingSleep(),
        )
        result = await kind.deliver(delivery(data=render(ride(60), "fit")))
    assert result.external_id == "upload:501" and fake.calls[UPLOADS] == 1


async def test_an_unreachable_runalyze_is_retryable(http: httpx.AsyncClient) -> None:
    kind = RunalyzeDestination(
        http, RunalyzeConfig(), {"token": TOKEN}, api_url="http://127.0.0.1:9/api/v1"
    )
    with pytest.raises(DeliveryError, match="did not answer the upload: ConnectError") as caught:
        await kind.deliver(delivery())
    assert caught.value.retryable


async def test_ping_checks_the_token(make: Any, fake: FakeRunalyze) -> None:
    result = await make().ping()
    assert result.status_code == 200 and fake.calls["GET /api/v1/ping"] == 1
    assert fake.tokens == [TOKEN]
    with pytest.raises(NeedsReauthorization):
        await make({"token": "wrong-token-0000"}).ping()


async def test_no_token_in_errors_or_logs(
    make: Any, fake: FakeRunalyze, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[DeliveryError] = []
    with structlog.testing.capture_logs() as logs:
        # A server that echoes the token it was sent, on the upload and on the status.
        fake.fault("POST", "/activities/uploads", 500, {"detail": f"bad request from {TOKEN}"})
        fake.fault("GET", "/activities/uploads/", 200, {"status": "failed", "message": TOKEN})
        for _ in range(2):
            with pytest.raises(DeliveryError) as caught:
                await make().deliver(delivery(data=render(ride(60), "fit")))
            errors.append(caught.value)
    assert all("[redacted]" in (e.response_excerpt or "") for e in errors)
    texts = [repr(logs), caplog.text, *(error_text(e) for e in errors)]
    assert leaked([TOKEN], *texts) == []
