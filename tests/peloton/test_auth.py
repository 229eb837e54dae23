"""Authentication over real loopback HTTP against the fake Auth0: the three ways to link an
account, refresh ahead of expiry and on 401, rotation, single-flight, and never looping logins."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from service.errors import InvalidInput
from service.peloton.client import PelotonClient
from service.peloton.errors import (
    AuthFlowError,
    NeedsReauthentication,
    Unauthorized,
)
from service.peloton.models import Credentials, LoginMethod, PelotonConfig, TokenSet
from tests.peloton.fake_peloton import (
    PASSWORD,
    PASSWORD_CLIENT,
    TTL_S,
    USER_ID,
    USERNAME,
    WEB_CLIENT,
    FakePeloton,
)
from tests.support.clock import FakeClock, RecordingSleep


class TokenSink:
    """An ``on_tokens`` callback that keeps what it was given."""

    def __init__(self) -> None:
        self.saved: list[TokenSet] = []

    async def __call__(self, tokens: TokenSet) -> None:
        self.saved.append(tokens)


def make_client(
    http: httpx.AsyncClient,
    config: PelotonConfig,
    clock: FakeClock,
    sleep: RecordingSleep,
    **kwargs: object,
) -> PelotonClient:
    return PelotonClient(http=http, config=config, clock=clock, sleep=sleep, **kwargs)  # type: ignore[arg-type]


def bearer_of(request: object) -> str:
    return request.headers["authorization"].removeprefix("Bearer ")  # type: ignore[attr-defined]


# --- (a) tokens the user supplies -----------------------------------------------------------


async def test_supplied_access_token_is_sent_as_bearer(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    access, _ = fake_peloton.seed_tokens()
    client = make_client(
        http, fake_config, clock, no_sleep, tokens=TokenSet.supplied(access_token=access)
    )
    me = await client.me()
    assert me.id == USER_ID
    assert bearer_of(fake_peloton.api_requests[0]) == access
    assert fake_peloton.calls["token:refresh_token"] == 0


async def test_supplied_refresh_token_only_refreshes_first_and_hands_back_rotation(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    _, refresh = fake_peloton.seed_tokens()
    sink = TokenSink()
    client = make_client(
        http,
        fake_config,
        clock,
        no_sleep,
        tokens=TokenSet.supplied(refresh_token=refresh),
        on_tokens=sink,
    )
    await client.me()
    assert fake_peloton.calls["token:refresh_token"] == 1
    assert len(sink.saved) == 1
    new = sink.saved[0]
    assert new.refresh_token not in (None, refresh)  # rotated
    assert new.refresh_token in fake_peloton.refresh_tokens
    assert refresh not in fake_peloton.refresh_tokens  # the old one is dead on the server
    assert new.expires_at == clock.now + timedelta(seconds=TTL_S)  # seconds, not hours
    assert new.client_id == WEB_CLIENT
    assert bearer_of(fake_peloton.api_requests[0]) == new.access_token

    # The next refresh must use the rotated refresh token (the old one would be refused).
    clock.advance(TTL_S - 60)
    await client.me()
    assert fake_peloton.calls["token:refresh_token"] == 2
    assert len(sink.saved) == 2
    assert client.tokens == sink.saved[1]


async def test_refresh_without_rotation_keeps_the_refresh_token(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    fake_peloton.rotate_refresh_tokens = False
    _, refresh = fake_peloton.seed_tokens()
    sink = TokenSink()
    client = make_client(
        http,
        fake_config,
        clock,
        no_sleep,
        tokens=TokenSet.supplied(refresh_token=refresh),
        on_tokens=sink,
    )
    await client.me()
    assert sink.saved[0].refresh_token == refresh


# --- (b) password grant ---------------------------------------------------------------------


async def test_password_grant_login(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    sink = TokenSink()
    creds = Credentials(username=USERNAME, password=PASSWORD, method=LoginMethod.PASSWORD)
    client = make_client(http, fake_config, clock, no_sleep, credentials=creds, on_tokens=sink)
    tokens = await client.login()
    assert fake_peloton.calls["token:password"] == 1
    assert tokens.client_id == PASSWORD_CLIENT
    assert tokens.expires_at == clock.now + timedelta(seconds=TTL_S)
    assert sink.saved == [tokens]
    assert (await client.me()).id == USER_ID
    assert fake_peloton.errors == []

    # Its refresh token belongs to the password client, and is refreshed with it.
    clock.advance(TTL_S)
    await client.me()
    assert fake_peloton.calls["token:refresh_token"] == 1
    assert fake_peloton.calls["token:password"] == 1


async def test_first_request_logs_in_by_itself(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    creds = Credentials(username=USERNAME, password=PASSWORD, method=LoginMethod.PASSWORD)
    client = make_client(http, fake_config, clock, no_sleep, credentials=creds)
    results = await asyncio.gather(*(client.me() for _ in range(10)))
    assert {me.id for me in results} == {USER_ID}
    assert fake_peloton.calls["token:password"] == 1


async def test_wrong_password_is_tried_exactly_once(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    creds = Credentials(username=USERNAME, password="wrong", method=LoginMethod.PASSWORD)
    client = make_client(http, fake_config, clock, no_sleep, credentials=creds)
    results = await asyncio.gather(*(client.me() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, NeedsReauthentication) for r in results)
    assert results[0].error_code == "invalid_grant"  # type: ignore[union-attr]
    with pytest.raises(NeedsReauthentication):
        await client.login()
    assert fake_peloton.calls["token:password"] == 1
    assert fake_peloton.api_requests == []
    assert no_sleep.waits == []  # nothing was retried


# --- (c) scripted web login (PKCE) ----------------------------------------------------------


async def test_pkce_web_login(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    sink = TokenSink()
    creds = Credentials(username=USERNAME, password=PASSWORD, method=LoginMethod.PKCE)
    client = make_client(http, fake_config, clock, no_sleep, credentials=creds, on_tokens=sink)
    tokens = await client.login()
    assert fake_peloton.errors == []  # csrf cookie == body, PKCE verifier matched, ...
    assert [fake_peloton.calls[k] for k in ("authorize", "usernamepassword", "login_callback")] == [
        1,
        1,
        1,
    ]
    assert fake_peloton.calls["token:authorization_code"] == 1
    assert fake_peloton.calls["app_callback"] == 0  # stopped at the redirect URI
    assert tokens.client_id == WEB_CLIENT
    assert tokens.expires_at == clock.now + timedelta(seconds=TTL_S)
    assert sink.saved == [tokens]
    assert (await client.me()).id == USER_ID
    # The login's cookies stayed in its own jar, not in the app-wide client.
    assert list(http.cookies.jar) == []


async def test_pkce_wrong_password_needs_reauthentication_once(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    creds = Credentials(username=USERNAME, password="nope", method=LoginMethod.PKCE)
    client = make_client(http, fake_config, clock, no_sleep, credentials=creds)
    results = await asyncio.gather(*(client.me() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, NeedsReauthentication) for r in results)
    assert results[0].error_code == "invalid_user_password"  # type: ignore[union-attr]
    assert fake_peloton.calls["usernamepassword"] == 1
    assert fake_peloton.calls["token:authorization_code"] == 0


async def test_pkce_without_csrf_cookie_is_a_flow_error(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    fake_peloton.set_csrf_cookie = False
    creds = Credentials(username=USERNAME, password=PASSWORD, method=LoginMethod.PKCE)
    client = make_client(http, fake_config, clock, no_sleep, credentials=creds)
    with pytest.raises(AuthFlowError, match="_csrf"):
        await client.login()
    with pytest.raises(AuthFlowError):  # dead: no second login
        await client.me()
    assert fake_peloton.calls["authorize"] == 1
    assert fake_peloton.calls["usernamepassword"] == 0


# --- refresh: ahead of expiry, on 401, single flight -----------------------------------------


async def test_refreshes_ahead_of_expiry_only_inside_the_margin(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    access, refresh = fake_peloton.seed_tokens()
    tokens = TokenSet(
        access_token=access,
        refresh_token=refresh,
        expires_at=clock.now + timedelta(minutes=10),
        client_id=WEB_CLIENT,
    )
    client = make_client(http, fake_config, clock, no_sleep, tokens=tokens)
    await client.me()
    assert fake_peloton.calls["token:refresh_token"] == 0
    assert bearer_of(fake_peloton.api_requests[-1]) == access

    clock.advance(6 * 60)  # 4 minutes left: inside the 5-minute margin
    await client.me()
    assert fake_peloton.calls["token:refresh_token"] == 1
    assert bearer_of(fake_peloton.api_requests[-1]) != access
    assert [r.headers["authorization"] for r in fake_peloton.api_requests].count(
        f"Bearer {access}"
    ) == 1  # the refresh happened before the request, not after a 401


async def test_twenty_concurrent_401s_cause_exactly_one_refresh(
    http: httpx.AsyncClient,
    fake_peloton: FakePeloton,
    fake_url: str,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    config = PelotonConfig(
        api_url=fake_url, auth_url=fake_url, web_client_id=WEB_CLIENT, concurrency=20
    )
    _, refresh = fake_peloton.seed_tokens()
    # An access token the server does not know (say, revoked), with no expiry to go by.
    tokens = TokenSet(access_token="stale", refresh_token=refresh, client_id=WEB_CLIENT)
    fake_peloton.hold_refresh_until_401s = 20  # every request has its 401 before the refresh
    sink = TokenSink()
    client = make_client(http, config, clock, no_sleep, tokens=tokens, on_tokens=sink)
    results = await asyncio.gather(*(client.me() for _ in range(20)))
    assert [me.id for me in results] == [USER_ID] * 20
    assert fake_peloton.unauthorized_served == 20
    assert fake_peloton.calls["token:refresh_token"] == 1
    assert len(sink.saved) == 1
    new = sink.saved[0].access_token
    retried = [bearer_of(r) for r in fake_peloton.api_requests[20:]]
    assert retried == [new] * 20


async def test_dead_refresh_token_without_password_needs_reauthentication(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    client = make_client(
        http, fake_config, clock, no_sleep, tokens=TokenSet.supplied(refresh_token="rt-revoked")
    )
    results = await asyncio.gather(*(client.me() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, NeedsReauthentication) for r in results)
    assert results[0].error_code == "invalid_grant"  # type: ignore[union-attr]
    with pytest.raises(NeedsReauthentication):
        await client.me()  # dead: no new refresh attempt
    assert fake_peloton.calls["token:refresh_token"] == 1
    assert client.session.dead is not None


@pytest.mark.parametrize(
    ("password", "logged_in"), [(PASSWORD, True), ("wrong", False)], ids=["ok", "refused"]
)
async def test_dead_refresh_token_falls_back_to_exactly_one_login(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
    password: str,
    logged_in: bool,
) -> None:
    creds = Credentials(username=USERNAME, password=password, method=LoginMethod.PASSWORD)
    tokens = TokenSet(access_token="stale", refresh_token="rt-revoked")
    client = make_client(http, fake_config, clock, no_sleep, credentials=creds, tokens=tokens)
    results = await asyncio.gather(*(client.me() for _ in range(20)), return_exceptions=True)
    if logged_in:
        assert all(getattr(r, "id", None) == USER_ID for r in results)
    else:
        assert all(isinstance(r, NeedsReauthentication) for r in results)
        with pytest.raises(NeedsReauthentication):
            await client.me()
    assert fake_peloton.calls["token:refresh_token"] == 1
    assert fake_peloton.calls["token:password"] == 1


async def test_expired_access_token_alone_needs_reauthentication_without_a_request(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    access, _ = fake_peloton.seed_tokens()
    tokens = TokenSet(access_token=access, expires_at=clock.now - timedelta(seconds=1))
    client = make_client(http, fake_config, clock, no_sleep, tokens=tokens)
    with pytest.raises(NeedsReauthentication, match="no refresh token or password"):
        await client.me()
    assert fake_peloton.api_requests == []


async def test_access_token_alone_rejected_by_401_needs_reauthentication(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    client = make_client(
        http, fake_config, clock, no_sleep, tokens=TokenSet.supplied(access_token="revoked")
    )
    with pytest.raises(NeedsReauthentication):
        await client.me()
    assert len(fake_peloton.api_requests) == 1
    assert sum(fake_peloton.calls.values()) == 0  # no token endpoint call at all


async def test_401_on_a_fresh_token_is_not_renewed_in_a_loop(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> None:
    _, refresh = fake_peloton.seed_tokens()
    client = make_client(
        http, fake_config, clock, no_sleep, tokens=TokenSet.supplied(refresh_token=refresh)
    )
    await client.me()
    fake_peloton.access_tokens.clear()  # the server now refuses every access token
    with pytest.raises(Unauthorized):
        await client.me()
    assert fake_peloton.calls["token:refresh_token"] == 1


async def test_an_account_needs_tokens_or_a_login(http: httpx.AsyncClient) -> None:
    with pytest.raises(InvalidInput, match="needs tokens"):
        PelotonClient(http=http)
    with pytest.raises(InvalidInput, match="needs tokens"):
        PelotonClient(http=http, credentials=Credentials(username=USERNAME, password=PASSWORD))
