"""The API calls: headers, parameters, the workout bundle, error mapping, retries, concurrency
and logging. Loopback HTTP against the fake for the main paths, MockTransport for edge cases."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest
import structlog

from service.errors import InvalidInput
from service.peloton.client import PelotonClient
from service.peloton.errors import (
    PelotonNotFound,
    RateLimited,
    TransientError,
    UnexpectedResponse,
)
from service.peloton.models import Credentials, LoginMethod, PelotonConfig, TokenSet
from tests.peloton.fake_peloton import (
    PASSWORD,
    USER_ID,
    USERNAME,
    FakePeloton,
    make_workout,
    workout_id,
)
from tests.support.clock import FakeClock, RecordingSleep

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]
MOCK_CONFIG = PelotonConfig(api_url="https://api.test", auth_url="https://auth.test")
ACCESS = "at-very-secret-access"
REFRESH = "rt-very-secret-refresh"


@pytest.fixture
async def mock_client(
    clock: FakeClock, no_sleep: RecordingSleep
) -> AsyncIterator[Callable[..., PelotonClient]]:
    """Builds a client over a MockTransport handler, with valid tokens for a day."""
    opened: list[httpx.AsyncClient] = []

    def build(handler: Handler, config: PelotonConfig = MOCK_CONFIG) -> PelotonClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        opened.append(http)
        tokens = TokenSet(
            access_token=ACCESS, refresh_token=REFRESH, expires_at=clock.now + timedelta(days=1)
        )
        return PelotonClient(http=http, config=config, tokens=tokens, clock=clock, sleep=no_sleep)

    yield build
    for http in opened:
        await http.aclose()


def answers(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler giving ``responses`` in turn (the last one forever); and the requests seen."""
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses[min(len(seen), len(responses)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


WORKOUT = make_workout(7, 1_700_000_000)


# --- loopback: endpoints, headers, parameters, bundle ------------------------------------------


async def test_every_call_sends_the_headers_and_parameters(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    fake_peloton.workouts = [make_workout(1, 1_700_000_000)]
    access, _ = fake_peloton.seed_tokens()
    client = PelotonClient(
        http=http,
        config=fake_config,
        tokens=TokenSet.supplied(access_token=access),
        clock=clock,
        sleep=no_sleep,
    )
    me = await client.me()
    settings = await client.user_settings(USER_ID)
    page = await client.list_workouts(USER_ID, page=0, limit=10)
    workout = await client.workout(workout_id(1))
    graph = await client.performance_graph(workout_id(1), every_n=5)
    details = await client.ride_details(workout.ride_id)

    assert me.id == USER_ID
    assert settings.distance_unit == "metric"
    assert [w.id for w in page.data] == [workout_id(1)]
    assert workout.raw == fake_peloton.workouts[0]
    assert graph["seconds_since_pedaling_start"] == [0, 5, 10, 15]
    assert details is not None
    assert details["ride"]["id"] == workout.ride_id

    requests = fake_peloton.api_requests
    assert len(requests) == 6
    for request in requests:
        assert request.headers["authorization"] == f"Bearer {access}"
        assert request.headers["peloton-platform"] == "web"
        assert request.headers["user-agent"] == fake_config.user_agent
    listing = requests[2].query_params
    assert dict(listing) == {
        "joins": "ride,ride.instructor",
        "limit": "10",
        "page": "0",
        "sort_by": "-created",
    }
    assert requests[3].query_params["joins"] == "ride,ride.instructor"
    assert requests[4].query_params["every_n"] == "5"


@pytest.mark.parametrize(
    ("ride_id", "expected"),
    [("abc", "details"), ("gone", None), ("0" * 32, "no request"), ("", "no request")],
)
async def test_fetch_bundle(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
    ride_id: str,
    expected: str | None,
) -> None:
    workout = make_workout(3, 1_700_000_000)
    workout["ride"]["id"] = ride_id
    fake_peloton.workouts = [workout]
    fake_peloton.missing_rides = {"gone"}
    access, _ = fake_peloton.seed_tokens()
    client = PelotonClient(
        http=http,
        config=fake_config,
        tokens=TokenSet.supplied(access_token=access),
        clock=clock,
        sleep=no_sleep,
    )
    bundle = await client.fetch_bundle(workout_id(3))
    assert set(bundle) == {"workout", "performance_graph", "ride_details"}
    assert bundle["workout"] == workout
    # every_n defaults to the configured 1: one sample a second.
    assert bundle["performance_graph"]["seconds_since_pedaling_start"] == list(range(20))
    ride_requests = [r for r in fake_peloton.api_requests if r.url.path.startswith("/api/ride/")]
    if expected == "details":
        assert bundle["ride_details"] == {"ride": {"id": ride_id}, "segments": {"segment_list": []}}
    else:
        assert bundle["ride_details"] is None
        assert len(ride_requests) == (1 if ride_id == "gone" else 0)


async def test_fetch_bundle_of_a_missing_workout(
    mock_client: Callable[..., PelotonClient],
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("performance_graph"):
            await asyncio.sleep(0)
            return httpx.Response(404, json={})
        return httpx.Response(404, json={"status": 404})

    client = mock_client(handler)
    with pytest.raises(PelotonNotFound):
        await client.fetch_bundle(workout_id(1))


# --- error mapping --------------------------------------------------------------------------


async def test_429_with_retry_after_seconds_is_rate_limited_and_not_retried(
    mock_client: Callable[..., PelotonClient], no_sleep: RecordingSleep
) -> None:
    handler, seen = answers(httpx.Response(429, headers={"Retry-After": "120"}, text="slow down"))
    with pytest.raises(RateLimited) as caught:
        await mock_client(handler).me()
    assert caught.value.retry_after == 120
    assert len(seen) == 1
    assert no_sleep.waits == []


async def test_429_with_retry_after_http_date(
    mock_client: Callable[..., PelotonClient], clock: FakeClock
) -> None:
    when = format_datetime(clock.now + timedelta(seconds=90), usegmt=True)
    handler, _ = answers(httpx.Response(429, headers={"Retry-After": when}))
    with pytest.raises(RateLimited) as caught:
        await mock_client(handler).me()
    assert caught.value.retry_after == 90


@pytest.mark.parametrize("status", [403, 429, 503])
async def test_cloudflare_1015_is_rate_limited(
    mock_client: Callable[..., PelotonClient], status: int
) -> None:
    handler, seen = answers(httpx.Response(status, text="error code: 1015"))
    with pytest.raises(RateLimited, match="Cloudflare") as caught:
        await mock_client(handler).me()
    assert caught.value.retry_after is None
    assert len(seen) == 1


async def test_5xx_then_success_is_retried_with_growing_backoff(
    mock_client: Callable[..., PelotonClient], no_sleep: RecordingSleep
) -> None:
    handler, seen = answers(
        httpx.Response(503),
        httpx.Response(502),
        httpx.Response(200, json={"id": USER_ID}),
    )
    with structlog.testing.capture_logs() as logs:
        me = await mock_client(handler).me()
    assert me.id == USER_ID
    assert len(seen) == 3
    base = MOCK_CONFIG.backoff_base_s
    assert len(no_sleep.waits) == 2
    for attempt, wait in enumerate(no_sleep.waits):  # base * 2**n plus up to base of jitter
        assert base * 2**attempt <= wait <= base * 2**attempt + base
    retries = [e for e in logs if e["event"] == "peloton.request.retry"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert retries[0]["what"] == "GET /api/me"
    assert "503" in retries[0]["error"]


async def test_persistent_5xx_gives_up_after_max_attempts(
    mock_client: Callable[..., PelotonClient], no_sleep: RecordingSleep
) -> None:
    handler, seen = answers(httpx.Response(500))
    with pytest.raises(TransientError, match="HTTP 500"):
        await mock_client(handler).me()
    assert len(seen) == MOCK_CONFIG.max_attempts
    assert len(no_sleep.waits) == MOCK_CONFIG.max_attempts - 1


async def test_503_asking_for_a_long_wait_is_handed_to_the_caller(
    mock_client: Callable[..., PelotonClient], no_sleep: RecordingSleep
) -> None:
    handler, seen = answers(httpx.Response(503, headers={"Retry-After": "3600"}))
    with pytest.raises(TransientError) as caught:
        await mock_client(handler).me()
    assert caught.value.retry_after == 3600
    assert len(seen) == 1
    assert no_sleep.waits == []


async def test_503_with_a_short_retry_after_waits_at_least_that_long(
    mock_client: Callable[..., PelotonClient], no_sleep: RecordingSleep
) -> None:
    handler, _ = answers(
        httpx.Response(503, headers={"Retry-After": "7"}), httpx.Response(200, json={"id": "x"})
    )
    await mock_client(handler).me()
    assert no_sleep.waits[0] >= 7


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("eof")],
    ids=["timeout", "connect", "protocol"],
)
async def test_transport_failures_are_retried(
    mock_client: Callable[..., PelotonClient], failure: Exception
) -> None:
    handler, seen = answers(failure, httpx.Response(200, json={"id": USER_ID}))
    assert (await mock_client(handler).me()).id == USER_ID
    assert len(seen) == 2

    handler, seen = answers(failure)
    with pytest.raises(TransientError, match="timed out|failed"):
        await mock_client(handler).me()
    assert len(seen) == MOCK_CONFIG.max_attempts


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<html>Bad gateway</html>", "malformed JSON"),
        (b'{"id": "abc"', "malformed JSON"),
        (b"[1, 2]", "not an object"),
        (b"{}", "blank workout"),
    ],
)
async def test_bad_bodies_are_transient(
    mock_client: Callable[..., PelotonClient], body: bytes, message: str
) -> None:
    handler, seen = answers(httpx.Response(200, content=body))
    with pytest.raises(TransientError, match=message):
        await mock_client(handler).workout(workout_id(1))
    assert len(seen) == MOCK_CONFIG.max_attempts


async def test_a_blank_answer_then_the_workout(
    mock_client: Callable[..., PelotonClient],
) -> None:
    handler, _ = answers(httpx.Response(200, content=b""), httpx.Response(200, json=WORKOUT))
    workout = await mock_client(handler).workout(WORKOUT["id"])
    assert workout.raw == WORKOUT


async def test_a_utf8_bom_is_tolerated(mock_client: Callable[..., PelotonClient]) -> None:
    handler, _ = answers(httpx.Response(200, content=b'\xef\xbb\xbf{"id": "abc"}'))
    assert (await mock_client(handler).me()).id == "abc"


@pytest.mark.parametrize(
    ("status", "error"), [(404, PelotonNotFound), (410, PelotonNotFound), (400, UnexpectedResponse)]
)
async def test_client_errors_are_not_retried(
    mock_client: Callable[..., PelotonClient], status: int, error: type[Exception]
) -> None:
    handler, seen = answers(httpx.Response(status, json={"status": status}))
    with pytest.raises(error, match=str(status)):
        await mock_client(handler).workout(workout_id(1))
    assert len(seen) == 1


async def test_fields_of_the_wrong_type_name_the_field(
    mock_client: Callable[..., PelotonClient],
) -> None:
    handler, _ = answers(httpx.Response(200, json={"id": "abc", "created_at": "yesterday"}))
    with pytest.raises(UnexpectedResponse, match="created_at"):
        await mock_client(handler).me()
    handler, _ = answers(httpx.Response(200, json={"username": "rider"}))
    with pytest.raises(UnexpectedResponse, match="no user id"):
        await mock_client(handler).me()


@pytest.mark.parametrize("bad", ["../me", "a/b", "", "x" * 65, "id?page=2"])
async def test_ids_that_would_change_the_path_are_refused(
    mock_client: Callable[..., PelotonClient], bad: str
) -> None:
    handler, seen = answers(httpx.Response(200, json=WORKOUT))
    client = mock_client(handler)
    with pytest.raises(InvalidInput, match="invalid Peloton"):
        await client.workout(bad)
    with pytest.raises(InvalidInput):
        await client.list_workouts(bad)
    assert seen == []


@pytest.mark.parametrize("every_n", [0, 61])
async def test_every_n_out_of_range(
    mock_client: Callable[..., PelotonClient], every_n: int
) -> None:
    handler, seen = answers(httpx.Response(200, json={}))
    with pytest.raises(InvalidInput, match="every_n"):
        await mock_client(handler).fetch_bundle(workout_id(1), every_n=every_n)
    assert seen == []


# --- concurrency and lifecycle --------------------------------------------------------------


async def test_requests_in_flight_never_exceed_the_concurrency(
    mock_client: Callable[..., PelotonClient],
) -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):  # let every other task run while this request is "on the wire"
            await asyncio.sleep(0)
        in_flight -= 1
        return httpx.Response(200, json=WORKOUT)

    config = PelotonConfig(api_url="https://api.test", auth_url="https://auth.test", concurrency=3)
    client = mock_client(handler, config)
    workouts = await asyncio.gather(*(client.workout(workout_id(i)) for i in range(12)))
    assert len(workouts) == 12
    assert peak == 3


async def test_a_client_closes_only_the_http_client_it_made() -> None:
    tokens = TokenSet(access_token=ACCESS)
    async with PelotonClient(tokens=tokens) as own:
        made = own._http
        assert not made.is_closed
    assert made.is_closed

    async with httpx.AsyncClient() as injected:
        async with PelotonClient(http=injected, tokens=tokens):
            pass
        assert not injected.is_closed


# --- secrets stay out of logs ---------------------------------------------------------------


async def test_no_secret_in_logs_or_messages(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_peloton.workouts = [make_workout(1, 1_700_000_000)]
    creds = Credentials(username=USERNAME, password=PASSWORD, method=LoginMethod.PKCE)
    client = PelotonClient(
        http=http, config=fake_config, credentials=creds, clock=clock, sleep=no_sleep
    )
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    with structlog.testing.capture_logs() as logs:
        await client.me()  # logs in
        fake_peloton.scripted = [(503, b"busy"), (500, b"")]
        await client.fetch_bundle(workout_id(1))  # retried
        clock.advance(3 * 86400)
        await client.me()  # refreshes
        fake_peloton.scripted = [(429, b"error code: 1015")]
        try:
            await client.me()
        except RateLimited as exc:
            errors.append(str(exc))
        fake_peloton.refresh_tokens.clear()
        fake_peloton.access_tokens.clear()
        clock.advance(3 * 86400)
        try:
            await client.me()  # refresh refused; falls back to one login (succeeds)
        except Exception as exc:  # pragma: no cover - shown in the assertion below
            errors.append(repr(exc))

    assert fake_peloton.calls["token:refresh_token"] == 2
    assert fake_peloton.calls["token:authorization_code"] == 2
    assert any(e["event"] == "peloton.request.retry" for e in logs)
    assert any(e["event"] == "peloton.auth.renewed" for e in logs)
    everything = " ".join([repr(logs), caplog.text, repr(client.tokens), repr(creds), *errors])
    secrets = [PASSWORD, *fake_peloton.issued]
    assert len(secrets) == 10  # two logins and a refresh: 3 x (access, refresh, id) tokens
    for secret in secrets:
        assert secret not in everything
    assert "Bearer" not in everything
