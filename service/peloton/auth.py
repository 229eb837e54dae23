"""Peloton's Auth0 flows: refresh, password grant, and the scripted web login (PKCE).

Each method makes one attempt and never retries: a retried login can get an account locked,
and a retried refresh can trip Auth0's refresh-token reuse detection. Failures map to:

* :class:`NeedsReauthentication`: Auth0 refused (``invalid_grant``, ``access_denied``, wrong
  password, blocked account...); the user has to link the account again.
* :class:`RateLimited`: 429 or Cloudflare's error 1015; a 403 without an OAuth error but with
  ``Retry-After``, or a page from Cloudflare's edge (see :mod:`service.peloton.errors`).
* :class:`PelotonForbidden`: a 403 without an OAuth error code but with a JSON body: a refusal.
* :class:`UnexpectedResponse`: a 403 with an empty or garbled body and no sign of throttling.
* :class:`TransientError`: 5xx, timeouts, connection errors, garbled answers to a success.
* :class:`AuthFlowError`: the web login met a page it did not expect.

The one exception to "one attempt": a password grant Peloton refuses *as a grant*
(:func:`grant_refused`: ``unauthorized_client``, or ``invalid_grant`` naming the grant type:
Auth0's answers once a client may no longer use it) is followed, once, by the web login, and
:meth:`Authenticator.login` says which method worked so the account remembers it. A refused
password (``invalid_grant`` "Wrong email or password.") is never tried again.

The web login runs in a short-lived ``httpx.AsyncClient`` of its own (``login_client_factory``)
because it needs a cookie jar for one login only: Auth0's session cookies in the app-wide client
would leak one account's login into another's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any, NamedTuple

import httpx
import structlog

from service.peloton.errors import (
    AuthFlowError,
    NeedsReauthentication,
    PelotonError,
    TransientError,
    UnexpectedResponse,
    json_object,
    refused,
    throttled,
)
from service.peloton.models import Credentials, LoginMethod, PelotonConfig, TokenSet

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
LoginClientFactory = Callable[[], httpx.AsyncClient]

_MAX_REDIRECTS = 10


def utcnow() -> datetime:
    return datetime.now(UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Pkce:
    """One login's PKCE verifier and S256 challenge, plus its ``state`` and ``nonce``."""

    verifier: str = field(repr=False)
    challenge: str
    state: str
    nonce: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = _b64url(secrets.token_bytes(64))
        challenge = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
        return cls(verifier, challenge, secrets.token_urlsafe(24), secrets.token_urlsafe(24))


class _HiddenForm(HTMLParser):
    """The first ``<form>`` of a page: its action and its named inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._state = "before"  # before -> inside -> after

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if tag == "form" and self._state == "before":
            self._state = "inside"
            self.action = values.get("action", "")
        elif tag == "input" and self._state == "inside" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._state == "inside":
            self._state = "after"


def parse_hidden_form(html: str) -> tuple[str, dict[str, str]] | None:
    """``(action, fields)`` of the first form in ``html``, or None if it has no form/action."""
    parser = _HiddenForm()
    parser.feed(html)
    parser.close()
    if not parser.action:
        return None
    return parser.action, parser.fields


def _oauth_error(response: httpx.Response) -> tuple[str | None, str]:
    """Auth0's error code and description: ``{error, error_description}`` from /oauth/token,
    ``{code, description}`` from /usernamepassword/login."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("error") or body.get("code")
    description = body.get("error_description") or body.get("description") or ""
    code = code if isinstance(code, str) else None
    return code, (description if isinstance(description, str) else "")[:200]


def auth_error(response: httpx.Response, what: str, now: datetime) -> PelotonError:
    """The error for a failed answer from Auth0 (token endpoint or login pages)."""
    status = response.status_code
    code, description = _oauth_error(response)
    if status == 429 and code == "too_many_attempts":
        # Auth0's brute-force protection blocked the account: only its owner can unblock it.
        return NeedsReauthentication(
            f"{what}: Peloton blocked the account after too many logins ({description})",
            error_code=code,
        )
    if code is not None and status in (400, 401, 403):  # Auth0 said what is wrong
        detail = f"{code}: {description}"
        return NeedsReauthentication(f"{what} was refused by Peloton ({detail})", error_code=code)
    body = json_object(response)
    limited = throttled(response, body, what, now)
    if limited is not None:
        return limited
    if status == 403:  # no OAuth error: a refusal in other words, or an unreadable answer
        return refused(response, body, what)
    if status in (400, 401):
        return NeedsReauthentication(f"{what} was refused by Peloton (HTTP {status})")
    if status == 408 or status >= 500:
        return TransientError(f"{what} failed: HTTP {status}")
    return UnexpectedResponse(f"{what}: Peloton answered HTTP {status}")


def _transport_error(exc: httpx.HTTPError, what: str) -> TransientError:
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{what} timed out")
    return TransientError(f"{what} failed: {type(exc).__name__}")


def grant_refused(exc: NeedsReauthentication) -> bool:
    """Whether Auth0 refused the password *grant* (turned off for the client), not the
    password: ``unauthorized_client`` ("Grant type 'password' not allowed for the client."),
    or ``invalid_grant`` whose description names the grant type. Wrong credentials are
    ``invalid_grant`` "Wrong email or password." and stay a refusal."""
    if exc.error_code == "unauthorized_client":
        return True
    text = str(exc).lower()
    return exc.error_code == "invalid_grant" and ("grant type" in text or "grant_type" in text)


class Login(NamedTuple):
    """The tokens of a login and the method that obtained them (it may differ from the one
    asked for: see :func:`grant_refused`)."""

    tokens: TokenSet
    method: LoginMethod


class Authenticator:
    """Performs Auth0 exchanges against ``config.auth_url``. Holds no account state."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: PelotonConfig,
        *,
        clock: Clock = utcnow,
        login_client_factory: LoginClientFactory | None = None,
    ) -> None:
        self._http = http
        self._config = config
        self._clock = clock
        self._login_client_factory = login_client_factory or self._default_login_client

    def _default_login_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self._config.timeout_s,
            headers={"User-Agent": self._config.browser_user_agent},
        )

    async def login(self, credentials: Credentials) -> Login:
        """One login with the account's method; a password grant refused as a grant falls
        back once to the web login (the result says which method worked)."""
        if not credentials.can_login or not credentials.username or not credentials.password:
            raise NeedsReauthentication("no username, password and login method to log in with")
        log.info("peloton.auth.login", method=str(credentials.method))
        if credentials.method is LoginMethod.PASSWORD:
            try:
                tokens = await self.password_grant(credentials.username, credentials.password)
                return Login(tokens, LoginMethod.PASSWORD)
            except NeedsReauthentication as exc:
                if not grant_refused(exc):
                    raise
                log.warning("peloton.auth.password_grant_refused", error_code=exc.error_code)
        tokens = await self.pkce_login(credentials.username, credentials.password)
        return Login(tokens, LoginMethod.PKCE)

    async def refresh(self, tokens: TokenSet, *, default_client_id: str) -> TokenSet:
        """Trade the refresh token for new tokens (the refresh token may rotate)."""
        if not tokens.refresh_token:
            raise NeedsReauthentication("there is no refresh token to renew the session with")
        client_id = tokens.client_id or default_client_id
        body = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "refresh_token": tokens.refresh_token,
        }
        return await self._token_request(
            body, what="token refresh", client_id=client_id, previous=tokens.refresh_token
        )

    async def password_grant(self, username: str, password: str) -> TokenSet:
        """``grant_type=password`` with the mobile client id (what pylotoncycle does)."""
        client_id = self._config.password_client_id
        body = {
            "grant_type": "password",
            "client_id": client_id,
            "scope": self._config.password_scope,
            "username": username,
            "password": password,
        }
        return await self._token_request(body, what="password login", client_id=client_id)

    async def pkce_login(self, username: str, password: str) -> TokenSet:
        """Peloton's web login, scripted: authorize, credentials, hidden form, code, tokens."""
        cfg = self._config
        pkce = Pkce.new()
        async with self._login_client_factory() as web:
            page = await self._browse(
                web, "GET", f"{cfg.auth_url}/authorize", self._authorize(pkce)
            )
            if isinstance(page, str):  # already signed in: straight back with a code
                code = page
            else:
                code = await self._submit_credentials(web, page, pkce, username, password)
        body = {
            "grant_type": "authorization_code",
            "client_id": cfg.web_client_id,
            "code_verifier": pkce.verifier,
            "code": code,
            "redirect_uri": cfg.redirect_uri,
        }
        return await self._token_request(body, what="web login", client_id=cfg.web_client_id)

    def _authorize(self, pkce: Pkce) -> dict[str, str]:
        cfg = self._config
        return {
            "client_id": cfg.web_client_id,
            "audience": cfg.audience,
            "scope": cfg.scope,
            "response_type": "code",
            "response_mode": "query",
            "redirect_uri": cfg.redirect_uri,
            "state": pkce.state,
            "nonce": pkce.nonce,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "auth0Client": cfg.auth0_client,
        }

    async def _submit_credentials(
        self,
        web: httpx.AsyncClient,
        login_page: httpx.Response,
        pkce: Pkce,
        username: str,
        password: str,
    ) -> str:
        cfg = self._config
        # Auth0 sets _csrf on the login page, scoped to path /usernamepassword/login.
        csrf = next((c.value for c in web.cookies.jar if c.name == "_csrf" and c.value), None)
        if csrf is None:
            raise AuthFlowError("web login: Peloton's login page did not set the _csrf cookie")
        payload = {
            "client_id": cfg.web_client_id,
            "redirect_uri": cfg.redirect_uri,
            "tenant": cfg.tenant,
            "response_type": "code",
            "scope": cfg.scope,
            "audience": cfg.audience,
            "_csrf": csrf,
            # The login page's URL carries Auth0's own transaction state; it must be echoed.
            "state": login_page.url.params.get("state") or pkce.state,
            "_intstate": "deprecated",
            "nonce": pkce.nonce,
            "username": username,
            "password": password,
            "connection": cfg.connection,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
        headers = {
            "Origin": cfg.auth_url,
            "Referer": str(login_page.url),
            "Auth0-Client": cfg.auth0_client,
            "Accept": "*/*",
        }
        url = f"{cfg.auth_url}/usernamepassword/login"
        answer = await self._browse(web, "POST", url, json=payload, headers=headers)
        if isinstance(answer, str):
            return answer
        form = parse_hidden_form(answer.text)
        if form is None:
            raise AuthFlowError("web login: Peloton's answer to the credentials had no form")
        action, fields = form
        result = await self._browse(
            web,
            "POST",
            str(answer.url.join(action)),
            data=fields,
            headers={"Origin": cfg.auth_url, "Referer": str(login_page.url)},
        )
        if isinstance(result, str):
            return result
        raise AuthFlowError("web login: Peloton did not redirect back with a code")

    async def _browse(
        self,
        web: httpx.AsyncClient,
        method: str,
        url: str,
        params: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response | str:
        """Send, then follow redirects. Returns the ``code`` once a redirect points at the
        redirect URI (which is never requested), else the final 2xx page."""
        what = "web login"
        redirect_uri = str(httpx.URL(self._config.redirect_uri))
        request = web.build_request(method, url, params=params, **kwargs)
        for _ in range(_MAX_REDIRECTS):
            try:
                response = await web.send(request, follow_redirects=False)
            except httpx.HTTPError as exc:
                raise _transport_error(exc, what) from exc
            location = response.headers.get("location")
            if response.is_redirect and location:
                target = response.url.join(location)
                if str(target).startswith(redirect_uri):
                    return self._code_from(target)
                # Auth0 redirects with 302, which browsers follow with a GET.
                request = web.build_request("GET", target)
                continue
            if response.is_success:
                return response
            raise auth_error(response, what, self._clock())
        raise AuthFlowError(f"web login: more than {_MAX_REDIRECTS} redirects")

    @staticmethod
    def _code_from(url: httpx.URL) -> str:
        code: str | None = url.params.get("code")
        if code:
            return code
        error = url.params.get("error")
        if error:
            description = (url.params.get("error_description") or "")[:200]
            raise NeedsReauthentication(
                f"web login was refused by Peloton ({error}: {description})", error_code=error
            )
        raise AuthFlowError("web login: Peloton redirected back without a code")

    async def _token_request(
        self,
        body: dict[str, str],
        *,
        what: str,
        client_id: str,
        previous: str | None = None,
    ) -> TokenSet:
        try:
            response = await self._http.post(
                f"{self._config.auth_url}/oauth/token",
                json=body,
                headers={"User-Agent": self._config.user_agent, "Accept": "application/json"},
                timeout=self._config.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise _transport_error(exc, what) from exc
        now = self._clock()
        if not response.is_success:
            raise auth_error(response, what, now)
        try:
            data = json.loads(response.content)
        except ValueError:
            raise TransientError(f"{what}: Peloton sent malformed JSON") from None
        if not isinstance(data, dict):
            raise TransientError(f"{what}: Peloton sent JSON that is not an object")
        try:
            return TokenSet.from_token_response(
                data, now=now, client_id=client_id, previous_refresh_token=previous
            )
        except ValueError:
            raise UnexpectedResponse(f"{what}: Peloton's answer has no access token") from None
