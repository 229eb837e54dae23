"""Authentication edge cases over MockTransport: web-login answers Peloton may give, a login
that fails transiently, and an early refresh that fails while the token is still valid."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from service.peloton.client import PelotonClient
from service.peloton.errors import AuthFlowError, NeedsReauthentication, TransientError
from service.peloton.models import Credentials, LoginMethod, PelotonConfig, TokenSet
from tests.peloton.fake_peloton import PASSWORD, TTL_S, USER_ID, USERNAME
from tests.support.clock import FakeClock, RecordingSleep

MOCK = PelotonConfig(
    api_url="https://api.test",
    auth_url="https://auth.test",
    redirect_uri="https://members.test/callback",
)
TOKENS_JSON = {"access_token": "at-new", "refresh_token": "rt-new", "expires_in": TTL_S}


class MockPeloton:
    """Auth0 pages + token endpoint + /api/me, answering from a few knobs.

    Kept apart from the loopback fake and the sandbox on purpose: it returns answers neither
    gives (a credentials page's odd shapes, token endpoint failures scripted per call) without
    teaching a server to misbehave, the MockTransport edge cases inside a unit."""

    def __init__(self, credentials_answer: httpx.Response | None = None) -> None:
        self.credentials_answer = credentials_answer
        self.token_answers: list[httpx.Response] = []
        self.seen: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        if path == "/authorize":
            return httpx.Response(302, headers={"Location": "/login?state=inner"})
        if path == "/login":
            cookie = "_csrf=tok; Path=/usernamepassword/login"
            return httpx.Response(200, text="login", headers={"Set-Cookie": cookie})
        if path == "/usernamepassword/login":
            assert self.credentials_answer is not None
            return self.credentials_answer
        if path == "/oauth/token":
            if self.token_answers:
                return self.token_answers.pop(0)
            return httpx.Response(200, json=TOKENS_JSON)
        if path == "/api/me":
            return httpx.Response(200, json={"id": USER_ID})
        return httpx.Response(404)

    def count(self, path: str) -> int:
        return sum(1 for r in self.seen if r.url.path == path)


@pytest.fixture
async def mock_http() -> AsyncIterator[tuple[httpx.AsyncClient, MockPeloton]]:
    fake = MockPeloton()
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        yield client, fake


def mock_client(
    mock_http: tuple[httpx.AsyncClient, MockPeloton],
    clock: FakeClock,
    sleep: RecordingSleep,
    **kwargs: object,
) -> PelotonClient:
    http, fake = mock_http
    return PelotonClient(
        http=http,
        config=MOCK,
        clock=clock,
        sleep=sleep,
        login_client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(fake)),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_pkce_credentials_answered_by_a_redirect_with_the_code(
    mock_http: tuple[httpx.AsyncClient, MockPeloton], clock: FakeClock, no_sleep: RecordingSleep
) -> None:
    _, fake = mock_http
    fake.credentials_answer = httpx.Response(
        302, headers={"Location": "https://members.test/callback?code=c0de&state=s"}
    )
    creds = Credentials(username=USERNAME, password=PASSWORD, method=LoginMethod.PKCE)
    tokens = await mock_client(mock_http, clock, no_sleep, credentials=creds).login()
    assert tokens.access_token == "at-new"
    posted = json.loads(fake.seen[2].content)
    assert posted["_csrf"] == "tok"
    assert posted["state"] == "inner"  # the login page's state is echoed
    exchange = json.loads(fake.seen[-1].content)
    assert exchange["code"] == "c0de"
    assert exchange["grant_type"] == "authorization_code"
    assert fake.count("/callback") == 0


@pytest.mark.parametrize(
    ("answer", "error", "match"),
    [
        (
            httpx.Response(
                302, headers={"Location": "https://members.test/callback?error=access_denied"}
            ),
            NeedsReauthentication,
            "access_denied",
        ),
        (
            httpx.Response(302, headers={"Location": "https://members.test/callback"}),
            AuthFlowError,
            "without a code",
        ),
        (httpx.Response(200, text="<p>Something changed</p>"), AuthFlowError, "no form"),
        (httpx.Response(429, json={"code": "too_many_attempts"}), NeedsReauthentication, "blocked"),
    ],
    ids=["denied", "no-code", "no-form", "blocked"],
)
async def test_pkce_failures_are_final(
    mock_http: tuple[httpx.AsyncClient, MockPeloton],
    clock: FakeClock,
    no_sleep: RecordingSleep,
    answer: httpx.Response,
    error: type[Exception],
    match: str,
) -> None:
    _, fake = mock_http
    fake.credentials_answer = answer
    creds = Credentials(username=USERNAME, password=PASSWORD, method=LoginMethod.PKCE)
    client = mock_client(mock_http, clock, no_sleep, credentials=creds)
    with pytest.raises(error, match=match):
        await client.me()
    with pytest.raises(error):
        await client.me()
    assert fake.count("/usernamepassword/login") == 1
    assert fake.count("/api/me") == 0


async def test_a_transiently_failed_login_is_not_retried_before_the_cooldown(
    mock_http: tuple[httpx.AsyncClient, MockPeloton], clock: FakeClock, no_sleep: RecordingSleep
) -> None:
    _, fake = mock_http
    fake.token_answers = [httpx.Response(503)]
    creds = Credentials(username=USERNAME, password=PASSWORD, method=LoginMethod.PASSWORD)
    client = mock_client(mock_http, clock, no_sleep, credentials=creds)
    with pytest.raises(TransientError) as caught:
        await client.me()
    assert caught.value.retry_after == MOCK.login_cooldown_s
    with pytest.raises(TransientError):
        await client.me()
    assert fake.count("/oauth/token") == 1

    clock.advance(MOCK.login_cooldown_s)
    assert (await client.me()).id == USER_ID
    assert fake.count("/oauth/token") == 2


async def test_a_failed_early_refresh_keeps_using_the_valid_token(
    mock_http: tuple[httpx.AsyncClient, MockPeloton], clock: FakeClock, no_sleep: RecordingSleep
) -> None:
    _, fake = mock_http
    fake.token_answers = [httpx.Response(502), httpx.Response(502)]
    tokens = TokenSet(
        access_token="at-old", refresh_token="rt-old", expires_at=clock.now + timedelta(minutes=3)
    )
    client = mock_client(mock_http, clock, no_sleep, tokens=tokens)
    await client.me()
    await client.me()  # within a minute of the failure: no new attempt
    assert fake.count("/oauth/token") == 1
    me_requests = [r for r in fake.seen if r.url.path == "/api/me"]
    assert {r.headers["authorization"] for r in me_requests} == {"Bearer at-old"}

    clock.advance(61)
    await client.me()  # tries again, fails again, still fine
    clock.advance(61)
    await client.me()  # third try works
    assert fake.count("/oauth/token") == 3
    assert fake.seen[-1].headers["authorization"] == "Bearer at-new"
