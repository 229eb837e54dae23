"""The real Peloton client against the real sandbox, over loopback HTTP.

Each test serves its own :class:`SandboxState` in the test's event loop and points a
:class:`PelotonClient` at it. The client's clock *is* the sandbox's clock, so moving sandbox time
forward (``state.advance``) expires tokens on both sides at once; backoff sleeps are recorded,
never waited. What happened on the wire is read from the sandbox's request log.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import gpxpy
import httpx
import pytest
from lxml import etree

from service.convert.formats import Format, render_all
from service.convert.peloton import parse_bundle
from service.peloton.client import PelotonClient
from service.peloton.errors import (
    NeedsReauthentication,
    PelotonForbidden,
    RateLimited,
    TransientError,
    UnexpectedResponse,
)
from service.peloton.models import Credentials, LoginMethod, PelotonConfig, TokenSet, Workout
from service.peloton.sandbox import KINDS, SandboxConfig, SandboxState, run_sandbox
from service.peloton.sandbox.state import Account
from tests.convert.fitcheck import decode, fit_seconds
from tests.convert.xsd import validate_gpx, validate_tcx
from tests.support.clock import RecordingSleep

TOKEN = "POST /oauth/token"
ME = "GET /api/me"
LIST = "GET /api/user/{user_id}/workouts"
WORKOUT = "GET /api/workout/{workout_id}"
LOGIN_PAGES = ("GET /authorize", "POST /usernamepassword/login")
TCX = "{http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2}"


class TokenSink:
    """An ``on_tokens`` callback that keeps what it was given."""

    def __init__(self) -> None:
        self.saved: list[TokenSet] = []

    async def __call__(self, tokens: TokenSet) -> None:
        self.saved.append(tokens)


@dataclass
class User:
    account: Account
    info: dict[str, Any]

    @property
    def id(self) -> str:
        return self.account.user.user_id

    @property
    def refresh_token(self) -> str:
        token = self.info["refresh_tokens"][0]["token"]
        assert isinstance(token, str)
        return token

    def credentials(self, method: LoginMethod, password: str | None = None) -> Credentials:
        return Credentials(
            username=self.info["username"],
            password=password or self.info["password"],
            method=method,
        )


@dataclass
class Sandbox:
    """A served sandbox, the app-wide httpx client, and helpers to read the request log."""

    state: SandboxState
    url: str
    http: httpx.AsyncClient
    sleep: RecordingSleep

    @property
    def config(self) -> PelotonConfig:
        # The sandbox's own /callback as redirect URI: if the client ever followed the last
        # redirect it would show up in the log instead of going to the internet.
        return PelotonConfig(
            api_url=self.url, auth_url=self.url, redirect_uri=f"{self.url}/callback"
        )

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.state.now(), UTC)

    def user(self, workouts: int = 3) -> User:
        account = self.state.add_user(workouts=workouts)
        return User(account, self.state.describe_user(account))

    def client(self, config: PelotonConfig | None = None, **kwargs: Any) -> PelotonClient:
        return PelotonClient(
            http=self.http, config=config or self.config, clock=self.now, sleep=self.sleep, **kwargs
        )

    def routes(self) -> list[str]:
        """``"METHOD /route"`` of every logged request, oldest first."""
        return [f"{e['method']} {e['route'] or e['path']}" for e in self.state.log.entries]

    def count(self, route: str) -> int:
        return self.routes().count(route)

    def statuses(self, route: str) -> list[int]:
        return [
            e["status"]
            for e in self.state.log.entries
            if f"{e['method']} {e['route'] or e['path']}" == route
        ]

    def forget(self) -> None:
        """Start a new phase: clear the request log."""
        self.state.log.clear()

    async def refresh_directly(self, refresh_token: str, client_id: str | None = None) -> str:
        """Auth0's answer to a refresh with ``refresh_token``: ``"ok"`` or the error code."""
        answer = await self.http.post(
            f"{self.url}/oauth/token",
            json={
                "grant_type": "refresh_token",
                "client_id": client_id or self.state.config.web_client_id,
                "refresh_token": refresh_token,
            },
        )
        return "ok" if answer.status_code == 200 else str(answer.json()["error"])

    def access_token_for(self, user: User) -> str:
        answer = self.state.tokens.issue(
            user.id,
            self.state.config.web_client_id,
            "offline_access openid peloton-api.members:default",
            issuer=f"{self.url}/",
        )
        token = answer["access_token"]
        assert isinstance(token, str)
        return token


@pytest.fixture
async def sandbox(no_sleep: RecordingSleep) -> AsyncIterator[Sandbox]:
    state = SandboxState(SandboxConfig(seed=11, users=0))
    async with run_sandbox(state) as url, httpx.AsyncClient() as http:
        yield Sandbox(state, url, http, no_sleep)


EXPIRES_IN = SandboxConfig().expires_in


# --- the ways to link an account ----------------------------------------------------------


async def test_supplied_refresh_token_is_traded_and_the_rotation_handed_back(
    sandbox: Sandbox,
) -> None:
    user = sandbox.user()
    sink = TokenSink()
    client = sandbox.client(
        tokens=TokenSet.supplied(refresh_token=user.refresh_token), on_tokens=sink
    )
    assert (await client.me()).id == user.id
    assert sandbox.routes() == [TOKEN, ME]
    (saved,) = sink.saved
    assert saved.refresh_token not in (None, user.refresh_token)
    assert saved.client_id == sandbox.state.config.web_client_id
    assert saved.expires_at == pytest.approx(
        sandbox.now() + timedelta(seconds=EXPIRES_IN), abs=timedelta(seconds=5)
    )
    assert sandbox.state.tokens.user_for(saved.access_token or "") == (user.id, False)
    # Rotation: the sandbox now holds only the new refresh token and refuses the old one.
    held = sandbox.state.describe_user(user.account)["refresh_tokens"]
    assert [t["token"] for t in held] == [saved.refresh_token]
    assert await sandbox.refresh_directly(user.refresh_token) == "invalid_grant"


async def test_supplied_access_token_only_is_used_until_it_expires(sandbox: Sandbox) -> None:
    user = sandbox.user(workouts=4)
    access = sandbox.access_token_for(user)
    client = sandbox.client(tokens=TokenSet.supplied(access_token=access))
    # The expiry was read from the token's JWT ``exp``.
    exp = sandbox.state.tokens.access[access].expires_at
    assert client.tokens is not None
    assert client.tokens.expires_at == datetime.fromtimestamp(exp, UTC)
    assert (await client.me()).id == user.id
    assert len([w async for w in client.iter_workouts(user.id)]) == 4
    assert TOKEN not in sandbox.routes()

    sandbox.state.advance(EXPIRES_IN + 1)
    sandbox.forget()
    with pytest.raises(NeedsReauthentication, match="no refresh token or password"):
        await client.me()
    assert sandbox.routes() == []  # it knew the token had expired: nothing was sent


@pytest.mark.parametrize("login", ["username", "email"])
async def test_password_grant_uses_the_mobile_client_and_refreshes_with_it(
    sandbox: Sandbox, login: str
) -> None:
    user = sandbox.user()
    cfg = sandbox.state.config
    creds = Credentials(
        username=user.info[login], password=user.info["password"], method=LoginMethod.PASSWORD
    )
    sink = TokenSink()
    client = sandbox.client(credentials=creds, on_tokens=sink)
    assert (await client.me()).id == user.id
    assert sandbox.routes() == [TOKEN, ME]
    (first,) = sink.saved
    assert first.client_id == cfg.password_client_id
    assert sandbox.state.tokens.access[first.access_token or ""].client_id == cfg.password_client_id
    assert first.refresh_token  # the mobile client's scope includes offline_access

    # Expired: renewed with the refresh token (bound to the mobile client), not a new login.
    sandbox.state.advance(EXPIRES_IN + 1)
    sandbox.forget()
    assert (await client.me()).id == user.id
    assert sandbox.routes() == [TOKEN, ME]
    assert len(sink.saved) == 2
    assert await sandbox.refresh_directly(first.refresh_token, cfg.password_client_id) == (
        "invalid_grant"
    )


WEB_LOGIN = [
    "GET /authorize",
    "GET /login",
    "POST /usernamepassword/login",
    "POST /login/callback",
    "GET /authorize/resume",
    TOKEN,
]


class MethodSink:
    """An ``on_method`` callback that keeps what it was given."""

    def __init__(self) -> None:
        self.saved: list[LoginMethod] = []

    async def __call__(self, method: LoginMethod) -> None:
        self.saved.append(method)


async def test_password_grant_refused_for_the_web_client_falls_back_to_the_web_login(
    sandbox: Sandbox,
) -> None:
    user = sandbox.user()
    web = sandbox.state.config.web_client_id
    config = PelotonConfig(
        api_url=sandbox.url,
        auth_url=sandbox.url,
        password_client_id=web,
        redirect_uri=f"{sandbox.url}/callback",
    )
    methods = MethodSink()
    client = sandbox.client(
        config, credentials=user.credentials(LoginMethod.PASSWORD), on_method=methods
    )
    assert (await client.me()).id == user.id
    assert sandbox.routes() == [TOKEN, *WEB_LOGIN, ME]
    assert sandbox.statuses(TOKEN) == [403, 200]
    assert methods.saved == [LoginMethod.PKCE]


@pytest.mark.parametrize("mode", ["unauthorized_client", "invalid_grant"])
async def test_password_grant_turned_off_falls_back_once_and_remembers_the_web_login(
    sandbox: Sandbox, mode: str
) -> None:
    user = sandbox.user()
    sandbox.state.runtime.password_grant = mode  # type: ignore[assignment]
    methods = MethodSink()
    client = sandbox.client(credentials=user.credentials(LoginMethod.PASSWORD), on_method=methods)
    assert (await client.me()).id == user.id
    # One refused password grant, then the web login, once.
    assert sandbox.routes() == [TOKEN, *WEB_LOGIN, ME]
    assert sandbox.statuses(TOKEN) == [403, 200]
    assert methods.saved == [LoginMethod.PKCE]
    assert client.session.credentials.method is LoginMethod.PKCE

    # Tokens gone: the next login goes straight to the web login, no password grant first.
    sandbox.state.tokens.revoke_user(user.id)
    sandbox.state.advance(EXPIRES_IN + 1)
    sandbox.forget()
    assert (await client.me()).id == user.id
    assert sandbox.routes() == [TOKEN, *WEB_LOGIN, ME]  # the refused refresh, then the login
    assert methods.saved == [LoginMethod.PKCE]


async def test_a_method_that_cannot_be_remembered_still_keeps_the_tokens(
    sandbox: Sandbox,
) -> None:
    user = sandbox.user()
    sandbox.state.runtime.password_grant = "unauthorized_client"

    async def broken(method: LoginMethod) -> None:
        raise RuntimeError("database unavailable")

    client = sandbox.client(credentials=user.credentials(LoginMethod.PASSWORD), on_method=broken)
    assert (await client.me()).id == user.id
    assert (await client.me()).id == user.id  # no second login: the tokens were kept
    assert sandbox.routes() == [TOKEN, *WEB_LOGIN, ME, ME]


async def test_a_wrong_password_is_one_token_request_and_never_retried(
    sandbox: Sandbox,
) -> None:
    user = sandbox.user()
    methods = MethodSink()
    client = sandbox.client(
        credentials=user.credentials(LoginMethod.PASSWORD, password="not-it"), on_method=methods
    )
    for _ in range(3):
        with pytest.raises(NeedsReauthentication) as caught:
            await client.me()
        assert caught.value.error_code == "invalid_grant"
    assert sandbox.routes() == [TOKEN]  # exactly one request reached the token endpoint
    assert methods.saved == []


async def test_a_wrong_password_after_the_fallback_stops_there(sandbox: Sandbox) -> None:
    user = sandbox.user()
    sandbox.state.runtime.password_grant = "unauthorized_client"
    client = sandbox.client(credentials=user.credentials(LoginMethod.PASSWORD, password="no"))
    for _ in range(2):
        with pytest.raises(NeedsReauthentication) as caught:
            await client.me()
        assert caught.value.error_code == "invalid_user_password"
    assert sandbox.routes() == [TOKEN, "GET /authorize", "GET /login", LOGIN_PAGES[1]]


async def test_the_password_grant_switch_is_an_admin_call(sandbox: Sandbox) -> None:
    answer = await sandbox.http.put(
        f"{sandbox.url}/_sandbox/password-grant", json={"mode": "invalid_grant"}
    )
    assert answer.json() == {"mode": "invalid_grant"}
    refused = await sandbox.http.post(
        f"{sandbox.url}/oauth/token",
        json={
            "grant_type": "password",
            "client_id": sandbox.state.config.password_client_id,
            "username": "anyone",
            "password": "anything",
        },
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "invalid_grant"
    assert "grant type" in refused.json()["error_description"].lower()
    bad = await sandbox.http.put(f"{sandbox.url}/_sandbox/password-grant", json={"mode": "x"})
    assert bad.status_code in (400, 422)
    await sandbox.http.post(f"{sandbox.url}/_sandbox/reset", json={})
    assert (await sandbox.http.get(f"{sandbox.url}/_sandbox/password-grant")).json() == {
        "mode": "allowed"
    }


async def test_pkce_web_login_walks_every_page(sandbox: Sandbox) -> None:
    user = sandbox.user()
    sink = TokenSink()
    client = sandbox.client(credentials=user.credentials(LoginMethod.PKCE), on_tokens=sink)
    assert (await client.me()).id == user.id
    assert sandbox.routes() == [
        "GET /authorize",
        "GET /login",
        "POST /usernamepassword/login",
        "POST /login/callback",
        "GET /authorize/resume",
        TOKEN,
        ME,
    ]  # and never GET /callback: the code is taken from the redirect, which is not followed
    (saved,) = sink.saved
    assert saved.client_id == sandbox.state.config.web_client_id
    assert saved.refresh_token
    assert sandbox.state.tokens.transactions == {}  # the login transaction was completed
    assert sandbox.state.tokens.codes == {}  # and its code spent


# --- expiry, refresh, rotation --------------------------------------------------------------


async def test_expiry_refreshes_ahead_then_on_401_rotating_each_time(sandbox: Sandbox) -> None:
    user = sandbox.user()
    sink = TokenSink()
    client = sandbox.client(
        tokens=TokenSet.supplied(refresh_token=user.refresh_token), on_tokens=sink
    )
    await client.me()
    assert len(sink.saved) == 1

    # Four minutes before expiry: inside the client's 5-minute margin, so it renews first.
    sandbox.state.advance(EXPIRES_IN - 240)
    sandbox.forget()
    await client.me()
    assert sandbox.routes() == [TOKEN, ME]
    assert sandbox.statuses(ME) == [200]  # renewed before sending: no 401
    assert len(sink.saved) == 2

    # Expired on the sandbox's side only (say, revoked and reissued): a 401, one refresh, retry.
    sandbox.state.advance(60)  # past the client's "token issued moments ago" guard
    sandbox.state.tokens.expire_all()
    sandbox.forget()
    assert (await client.me()).id == user.id
    assert sandbox.routes() == [ME, TOKEN, ME]
    assert sandbox.statuses(ME) == [401, 200]
    assert len(sink.saved) == 3

    rotated = [t.refresh_token for t in sink.saved]
    assert len({user.refresh_token, *rotated}) == 4
    assert client.tokens == sink.saved[-1]
    for old in [user.refresh_token, *rotated[:-1]]:
        assert old is not None
        assert await sandbox.refresh_directly(old) == "invalid_grant"


@pytest.mark.parametrize("expired_by", ["clock", "server"])
async def test_twenty_concurrent_calls_after_expiry_refresh_exactly_once(
    sandbox: Sandbox, expired_by: str
) -> None:
    user = sandbox.user()
    sink = TokenSink()
    client = sandbox.client(
        tokens=TokenSet.supplied(refresh_token=user.refresh_token), on_tokens=sink
    )
    await client.me()
    if expired_by == "clock":
        sandbox.state.advance(EXPIRES_IN + 1)  # the client sees it too: renews before sending
    else:
        sandbox.state.advance(60)
        sandbox.state.tokens.expire_all()  # only the sandbox knows: requests get 401
    sandbox.forget()

    results = await asyncio.gather(*(client.me() for _ in range(20)))

    assert [me.id for me in results] == [user.id] * 20
    assert sandbox.count(TOKEN) == 1
    assert len(sink.saved) == 2
    unauthorized = sandbox.statuses(ME).count(401)
    if expired_by == "clock":
        assert unauthorized == 0
    else:  # only requests already in flight (at most `concurrency`) met the old token
        assert 1 <= unauthorized <= sandbox.config.concurrency
    assert sandbox.statuses(ME).count(200) == 20


@pytest.mark.parametrize("password_known", [False, True])
async def test_revoked_tokens_need_reauthentication_without_a_password(
    sandbox: Sandbox, password_known: bool
) -> None:
    user = sandbox.user()
    creds = user.credentials(LoginMethod.PASSWORD) if password_known else None
    client = sandbox.client(
        tokens=TokenSet.supplied(refresh_token=user.refresh_token), credentials=creds
    )
    await client.me()
    sandbox.state.advance(60)
    sandbox.state.tokens.revoke_user(user.id)
    sandbox.forget()

    if password_known:  # the refresh is refused, then exactly one login succeeds
        assert (await client.me()).id == user.id
        assert sandbox.routes() == [ME, TOKEN, TOKEN, ME]
        assert sandbox.statuses(TOKEN) == [403, 200]
        return
    with pytest.raises(NeedsReauthentication) as caught:
        await client.me()
    assert caught.value.error_code == "invalid_grant"
    assert sandbox.routes() == [ME, TOKEN]  # one refused refresh; no login of any kind
    assert client.session.dead is not None
    sandbox.forget()
    with pytest.raises(NeedsReauthentication):
        await client.me()
    assert sandbox.routes() == []  # a dead session does not touch the network


@pytest.mark.parametrize("method", [LoginMethod.PASSWORD, LoginMethod.PKCE])
async def test_wrong_password_is_tried_exactly_once(sandbox: Sandbox, method: LoginMethod) -> None:
    user = sandbox.user()
    client = sandbox.client(credentials=user.credentials(method, password="not-the-password"))
    results = await asyncio.gather(*(client.me() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, NeedsReauthentication) for r in results), results
    with pytest.raises(NeedsReauthentication):
        await client.login()
    if method is LoginMethod.PASSWORD:
        assert sandbox.routes() == [TOKEN]
        assert sandbox.statuses(TOKEN) == [403]
    else:
        assert sandbox.count("POST /usernamepassword/login") == 1
        assert sandbox.statuses("POST /usernamepassword/login") == [401]
        assert TOKEN not in sandbox.routes()
    assert ME not in sandbox.routes()
    assert sandbox.sleep.waits == []


# --- rate limiting and transient failures -----------------------------------------------------


async def _linked(sandbox: Sandbox, workouts: int = 3) -> tuple[User, PelotonClient]:
    """A user and a client holding a valid access token (so no auth traffic below)."""
    user = sandbox.user(workouts)
    client = sandbox.client(tokens=TokenSet.supplied(access_token=sandbox.access_token_for(user)))
    return user, client


async def test_429_with_retry_after_is_rate_limited_and_not_retried(sandbox: Sandbox) -> None:
    user, client = await _linked(sandbox)
    sandbox.state.faults.add("rate_limit", path_prefix="/api/", retry_after=120)
    with pytest.raises(RateLimited) as caught:
        await client.me()
    assert caught.value.retry_after == 120.0
    assert sandbox.statuses(ME) == [429]
    assert sandbox.sleep.waits == []
    assert (await client.me()).id == user.id  # the fault fired once


async def test_cloudflare_1015_is_rate_limited(sandbox: Sandbox) -> None:
    user, client = await _linked(sandbox)
    sandbox.state.faults.add("cloudflare", path_prefix="/api/workout/")
    workout_id = sandbox.state.workouts(user.account)[0].workout_id
    with pytest.raises(RateLimited, match=r"Cloudflare \(error 1015\)") as caught:
        await client.workout(workout_id)
    assert caught.value.retry_after is None
    # Answered by the "edge" before any route matched: the log has only the path.
    assert [(e["path"], e["status"]) for e in sandbox.state.log.entries] == [
        (f"/api/workout/{workout_id}", 403)
    ]
    assert sandbox.sleep.waits == []


# --- 403: throttling, a refusal, or an answer we cannot read ---------------------------------


@pytest.mark.parametrize(
    ("kind", "source", "retry_after"),
    [
        ("cloudflare_json", r"Cloudflare \(error 1015\), retry after 45 s", 45.0),
        ("cloudflare_challenge", r"Cloudflare \(HTTP 403\)", None),
    ],
)
async def test_cloudflare_403s_are_rate_limited(
    sandbox: Sandbox, kind: str, source: str, retry_after: float | None
) -> None:
    user, client = await _linked(sandbox)
    sandbox.state.faults.add(kind, path_prefix="/api/me", retry_after=45)  # type: ignore[arg-type]
    with pytest.raises(RateLimited, match=source) as caught:
        await client.me()
    assert caught.value.retry_after == retry_after
    assert sandbox.statuses(ME) == [403]  # postponed by the caller, never retried here
    assert sandbox.sleep.waits == []
    assert (await client.me()).id == user.id


async def test_pelotons_own_403_is_a_refusal_not_throttling(sandbox: Sandbox) -> None:
    user, client = await _linked(sandbox)
    other = sandbox.user()
    # Another user's workouts (what a private profile answers): Peloton's JSON 403.
    with pytest.raises(PelotonForbidden, match="You do not have permission") as caught:
        await client.list_workouts(other.id)
    assert not isinstance(caught.value, RateLimited | TransientError)
    # The same answer passed on by Cloudflare (its headers on it) is still Peloton's refusal.
    spec = sandbox.state.workouts(user.account)[0]
    sandbox.state.faults.add("forbidden", path_prefix=f"/api/workout/{spec.workout_id}")
    with pytest.raises(PelotonForbidden, match=r"HTTP 403 \(You do not have permission"):
        await client.workout(spec.workout_id)
    # Once each: a refusal is not retried. (A faulted answer is the "edge's": no route.)
    assert sandbox.statuses(LIST) == [403]
    assert [(e["path"], e["status"]) for e in sandbox.state.log.entries][1:] == [
        (f"/api/workout/{spec.workout_id}", 403)
    ]
    assert TOKEN not in sandbox.routes()  # nor taken for an expired token
    assert sandbox.sleep.waits == []
    assert (await client.workout(spec.workout_id)).id == spec.workout_id


async def test_a_refused_class_plan_leaves_the_bundle_without_it(sandbox: Sandbox) -> None:
    user, client = await _linked(sandbox)
    (spec,) = sandbox.state.add_workouts(user.account, kind="cycling_class")
    assert not spec.ride.is_just_ride
    sandbox.state.faults.add("forbidden", path_prefix="/api/ride/")
    bundle = await client.fetch_bundle(spec.workout_id)
    assert bundle["ride_details"] is None
    assert bundle["workout"]["id"] == spec.workout_id and bundle["performance_graph"]
    assert sandbox.state.log.by_fault["forbidden"] == 1


@pytest.mark.parametrize(
    ("kind", "body"),
    [("forbidden_garbled", "body it could not read"), ("forbidden_empty", "empty body")],
)
async def test_an_unreadable_403_is_an_unexpected_answer(
    sandbox: Sandbox, kind: str, body: str
) -> None:
    user, client = await _linked(sandbox)
    sandbox.state.faults.add(kind, path_prefix="/api/me")  # type: ignore[arg-type]
    with pytest.raises(UnexpectedResponse, match=f"HTTP 403 to GET /api/me with an? {body}"):
        await client.me()
    assert sandbox.statuses(ME) == [403]
    assert sandbox.sleep.waits == []
    assert (await client.me()).id == user.id


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("cloudflare_json", RateLimited),
        ("cloudflare_challenge", RateLimited),
        ("forbidden", PelotonForbidden),
        ("forbidden_garbled", UnexpectedResponse),
        ("forbidden_empty", UnexpectedResponse),
    ],
)
async def test_a_403_from_the_token_endpoint_is_told_apart_too(
    sandbox: Sandbox, kind: str, error: type[Exception]
) -> None:
    user = sandbox.user()
    client = sandbox.client(tokens=TokenSet.supplied(refresh_token=user.refresh_token))
    sandbox.state.faults.add(kind, path_prefix="/oauth/token")  # type: ignore[arg-type]
    with pytest.raises(error):
        await client.me()
    # Neither a refusal of the grant nor a reason to log in: the session lives on, and the
    # refresh token still works once the fault is gone.
    assert client.session.dead is None
    assert sandbox.routes() == [TOKEN]
    sandbox.state.advance(61)  # past the renewal back-off after a failed refresh
    assert (await client.me()).id == user.id


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retried_with_backoff_then_succeed(
    sandbox: Sandbox, status: int
) -> None:
    user, client = await _linked(sandbox)
    sandbox.state.faults.add("server_error", count=2, status=status, path_prefix="/api/me")
    assert (await client.me()).id == user.id
    assert sandbox.statuses(ME) == [status, status, 200]
    assert len(sandbox.sleep.waits) == 2
    assert all(w > 0 for w in sandbox.sleep.waits)


async def test_server_errors_give_up_after_max_attempts(sandbox: Sandbox) -> None:
    _, client = await _linked(sandbox)
    sandbox.state.faults.add("server_error", count=10, path_prefix="/api/me")
    with pytest.raises(TransientError, match="HTTP 503"):
        await client.me()
    attempts = sandbox.config.max_attempts
    assert sandbox.statuses(ME) == [503] * attempts
    assert len(sandbox.sleep.waits) == attempts - 1


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body"])
async def test_garbled_answers_are_retried(sandbox: Sandbox, kind: str) -> None:
    user, client = await _linked(sandbox)
    spec = sandbox.state.workouts(user.account)[1]
    sandbox.state.faults.add(kind, path_prefix=f"/api/workout/{spec.workout_id}")  # type: ignore[arg-type]
    workout = await client.workout(spec.workout_id)
    assert workout.id == spec.workout_id
    assert workout.created_at == datetime.fromtimestamp(spec.created_at, UTC)
    assert sandbox.statuses(WORKOUT) == [200, 200]
    assert [e["fault"] for e in sandbox.state.log.entries] == [kind, None]
    assert len(sandbox.sleep.waits) == 1


# --- listing -------------------------------------------------------------------------------


def _list_queries(sandbox: Sandbox) -> list[dict[str, list[str]]]:
    return [parse_qs(e["query"]) for e in sandbox.state.log.entries if e["route"] == LIST[4:]]


@pytest.mark.parametrize(
    ("count", "page_size"), [(0, 100), (1, 100), (100, 100), (101, 100), (100, 20), (101, 20)]
)
async def test_iter_workouts_returns_each_workout_once_with_a_constant_limit(
    sandbox: Sandbox, count: int, page_size: int
) -> None:
    user, client = await _linked(sandbox, workouts=count)
    listed = [w.id async for w in client.iter_workouts(user.id, page_size=page_size)]
    assert listed == [w.workout_id for w in sandbox.state.workouts(user.account)]
    assert len(set(listed)) == count
    queries = _list_queries(sandbox)
    assert [q["page"] for q in queries] == [
        [str(p)] for p in range(max(1, math.ceil(count / page_size)))
    ]
    assert all(q["limit"] == [str(page_size)] for q in queries)


async def test_iter_workouts_skips_repeats_when_new_workouts_shift_the_pages(
    sandbox: Sandbox,
) -> None:
    user, client = await _linked(sandbox, workouts=25)
    before = [w.workout_id for w in sandbox.state.workouts(user.account)]
    listed: list[str] = []
    async for workout in client.iter_workouts(user.id, page_size=10):
        assert workout.id is not None
        listed.append(workout.id)
        if len(listed) == 10:  # between pages: a new workout pushes every page down by one
            sandbox.state.add_workouts(user.account)
    assert listed == before
    assert len(_list_queries(sandbox)) == 3


async def test_list_new_workouts_stops_at_a_known_id(sandbox: Sandbox) -> None:
    user, client = await _linked(sandbox, workouts=30)
    ids = [w.workout_id for w in sandbox.state.workouts(user.account)]
    new = await client.list_new_workouts(user.id, known_ids={ids[12], ids[20]}, page_size=5)
    assert [w.id for w in new.complete] == ids[:12]
    assert new.in_progress == []
    assert (new.stopped_by, new.pages_fetched) == ("known", 3)
    assert [q["page"] for q in _list_queries(sandbox)] == [["0"], ["1"], ["2"]]
    assert all(q["limit"] == ["5"] for q in _list_queries(sandbox))


async def test_list_new_workouts_stops_at_a_since_date(sandbox: Sandbox) -> None:
    user, client = await _linked(sandbox, workouts=30)
    specs = sandbox.state.workouts(user.account)
    since = datetime.fromtimestamp((specs[7].created_at + specs[8].created_at) / 2, UTC)
    new = await client.list_new_workouts(user.id, since=since, page_size=5)
    assert [w.id for w in new.complete] == [s.workout_id for s in specs[:8]]
    assert all(w.created_at is not None and w.created_at >= since for w in new.complete)
    assert (new.stopped_by, new.pages_fetched) == ("since", 2)


async def test_in_progress_workouts_are_reported_apart_until_complete(sandbox: Sandbox) -> None:
    user, client = await _linked(sandbox, workouts=5)
    known = {sandbox.state.workouts(user.account)[0].workout_id}
    (done,) = sandbox.state.add_workouts(user.account, kind="cycling_class")
    (running,) = sandbox.state.add_workouts(user.account, kind="outdoor_run", in_progress=True)

    new = await client.list_new_workouts(user.id, known_ids=known)
    assert [w.id for w in new.complete] == [done.workout_id]
    assert [(w.id, w.status) for w in new.in_progress] == [(running.workout_id, "IN_PROGRESS")]
    assert new.stopped_by == "known"

    sandbox.state.complete(running.workout_id)
    known.add(done.workout_id)  # stored; the in-progress one was not
    new = await client.list_new_workouts(user.id, known_ids=known)
    assert [(w.id, w.status) for w in new.complete] == [(running.workout_id, "COMPLETE")]
    assert new.in_progress == []
    activity = parse_bundle(await client.fetch_bundle(running.workout_id))
    assert activity.source.workout_id == running.workout_id
    assert activity.has_gps


# --- every sandbox workout converts to valid files --------------------------------------------


def _values(graph: dict[str, Any], slug: str) -> dict[float, float]:
    for metric in graph["metrics"]:
        if metric["slug"] == slug:
            return {
                offset: value
                for offset, value in zip(
                    graph["seconds_since_pedaling_start"], metric["values"], strict=True
                )
                if value is not None and not (slug == "heart_rate" and value == 0)
            }
    return {}


@pytest.mark.parametrize("kind", KINDS)
async def test_every_sandbox_workout_converts_to_valid_files(sandbox: Sandbox, kind: str) -> None:
    user, client = await _linked(sandbox, workouts=0)
    (spec,) = sandbox.state.add_workouts(user.account, kind=kind)

    bundle = await client.fetch_bundle(spec.workout_id)

    # What the client hands the converter is the sandbox's JSON, untouched.
    graph = bundle["performance_graph"]
    assert graph == json.loads(sandbox.state.graph_body(spec, sandbox.config.every_n))
    assert bundle["workout"]["id"] == spec.workout_id
    ride_id = Workout.model_validate(bundle["workout"]).ride_id
    assert (bundle["ride_details"] is None) == (ride_id is None)
    assert (ride_id is None) == ("just" in kind)

    activity = parse_bundle(bundle)
    files = render_all(activity)
    outdoor = kind.startswith("outdoor")
    assert set(files) == {Format.TCX, Format.FIT, Format.JSON} | (
        {Format.GPX} if outdoor else set()
    )
    start = datetime.fromtimestamp(bundle["workout"]["start_time"], UTC)
    assert activity.start == start
    assert activity.source.workout_id == spec.workout_id

    validate_tcx(files[Format.TCX])
    tcx = etree.fromstring(files[Format.TCX])
    assert tcx.findtext(f".//{TCX}Activity/{TCX}Id") == start.isoformat().replace("+00:00", "Z")

    if outdoor:
        validate_gpx(files[Format.GPX])
        gpx = gpxpy.parse(files[Format.GPX].decode())
        got = {p.time for t in gpx.tracks for s in t.segments for p in s.points}
        want = {
            start + timedelta(seconds=c["seconds_offset_from_start"])
            for loc in graph["location_data"]
            if not loc["is_gap"]
            for c in loc["coordinates"]
        }
        assert got == want

    fit = decode(files[Format.FIT])
    assert len(fit.records) == len(activity.samples) > 0
    assert fit.one("session")["start_time"] == fit_seconds(start)
    by_time = {r["timestamp"]: r for r in fit.records}
    for field_name, slug in (("heart_rate", "heart_rate"), ("power", "output")):
        for offset, value in _values(graph, slug).items():
            record = by_time[start + timedelta(seconds=offset)]
            assert record.get(field_name) == round(value), (field_name, offset)
