"""Strava OAuth 2.0 (authorization code): the authorize URL, code exchange and token refresh.

Flow (developers.strava.com/docs/authentication):

1. Send the user to :func:`authorize_url` (``{oauth}/authorize`` with ``response_type=code``,
   the app's ``client_id``, our ``redirect_uri``, ``scope`` and a signed ``state``: see
   :class:`~.strava_state.OAuthStateSigner`, which binds the callback to the destination that
   started it and expires after 10 minutes).
2. Strava redirects back with ``code``, ``state`` and the ``scope`` the user actually granted;
   the user may untick scopes, so call :func:`check_granted_scope` (uploads need
   ``activity:write``).
3. :meth:`StravaOAuth.exchange_code` posts ``grant_type=authorization_code`` to
   ``{oauth}/token`` and gets ``access_token``, ``refresh_token``, ``expires_at`` (epoch
   seconds, about 6 h ahead) and ``athlete``. Store :meth:`StravaTokens.as_secrets` as the
   destination's secrets.
4. :meth:`StravaOAuth.refresh` posts ``grant_type=refresh_token``. Strava may rotate the refresh
   token (the old one then stops working), so the kind hands the new set back to the engine as
   ``updated_secrets``.
5. :meth:`StravaOAuth.deauthorize` posts the access token to ``{oauth}/deauthorize``: Strava
   invalidates every token of the athlete for this application and removes it from the
   athlete's connected apps (developers.strava.com/docs/authentication, "Deauthorization").

One :class:`StravaOAuth` per Strava application, shared by its destinations: it holds the app's
client secret and makes refreshes *single-flight*, so two deliveries to the same account that
both find the access token expired do one refresh and both get its result, instead of the
second one presenting an already-rotated refresh token and parking the destination.

Failures are :mod:`.base` errors so the delivery path needs no translation: a refused grant is
:class:`NeedsReauthorization`, a 429 :class:`Postponed`, a 5xx or network error a retryable
:class:`DeliveryError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
from pydantic import SecretStr

from service.destinations.kinds.base import (
    DeliveryError,
    NeedsReauthorization,
    Postponed,
)
from service.destinations.kinds.http_common import (
    Clock,
    Redactor,
    json_object,
    retry_after,
    status_error,
    transport_error,
    utcnow,
)
from service.errors import InvalidInput

log = structlog.get_logger(__name__)

DEFAULT_OAUTH_URL = "https://www.strava.com/oauth"
DEFAULT_SCOPE = "activity:write,read"
REQUIRED_SCOPE = "activity:write"
#: How long a refresh's result is remembered for callers still holding the old refresh token.
ROTATION_MEMORY_S = 600.0
SERVICE = "Strava"
ATHLETE_LIMIT = (
    'Strava refused to connect another athlete to this API application ("Limit of connected '
    'athletes exceeded": a new application connects only its owner until Strava reviews it); '
    "give this destination its own Strava application (config.client_id and "
    "secrets.client_secret, from the rider's strava.com/settings/api) or have the shared "
    "application's athlete capacity raised"
)


class InsufficientScope(InvalidInput):
    """The user did not grant a scope pelosync needs."""

    title = "Missing Strava permission"


def authorize_url(
    client_id: str,
    redirect_uri: str,
    state: str,
    scope: str = DEFAULT_SCOPE,
    *,
    oauth_url: str = DEFAULT_OAUTH_URL,
    approval_prompt: str = "auto",
) -> str:
    """The URL to send the user to. ``approval_prompt="force"`` always shows the consent page."""
    if not client_id:
        raise InvalidInput("Strava client id is not configured (PELOSYNC_STRAVA_CLIENT_ID)")
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "approval_prompt": approval_prompt,
            "scope": scope,
            "state": state,
        }
    )
    return f"{oauth_url.rstrip('/')}/authorize?{query}"


def check_granted_scope(scope: str | None, required: str = REQUIRED_SCOPE) -> None:
    """Raise :class:`InsufficientScope` unless the comma-separated ``scope`` has ``required``."""
    granted = {part.strip() for part in (scope or "").split(",") if part.strip()}
    if required not in granted:
        raise InsufficientScope(
            f"Strava access was granted without '{required}' (granted: "
            f"{', '.join(sorted(granted)) or 'nothing'}); authorize again and keep "
            "'Upload your activities' ticked"
        )


@dataclass(frozen=True)
class StravaTokens:
    """What Strava's token endpoint answers."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: int  # epoch seconds
    athlete: dict[str, Any] | None = None
    scope: str | None = None

    @property
    def athlete_id(self) -> int | None:
        value = (self.athlete or {}).get("id")
        return value if isinstance(value, int) else None

    def as_secrets(self) -> dict[str, Any]:
        """The destination's secrets for these tokens."""
        secrets: dict[str, Any] = {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
        }
        if self.athlete_id is not None:
            secrets["athlete_id"] = self.athlete_id
        if self.scope is not None:
            secrets["scope"] = self.scope
        return secrets


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def missing_permission(body: dict[str, Any] | None) -> str | None:
    """The scope a 401 says the token lacks: Strava answers a call the granted scopes do not
    cover with ``{"message": "Authorization Error", "errors": [{"resource": "AccessToken",
    "field": "activity:write_permission", "code": "missing"}]}``
    (github.com/danshannon/javastravav3api/issues/140 for uploads,
    github.com/googledatastudio/community-connectors/issues/291 for the body's shape)."""
    for item in (body or {}).get("errors") or []:
        if not isinstance(item, dict) or item.get("code") != "missing":
            continue
        field_name = str(item.get("field") or "")
        if item.get("resource") == "AccessToken" and field_name.endswith("_permission"):
            return field_name.removesuffix("_permission")
    return None


def athlete_limit_reached(body: dict[str, Any] | None) -> bool:
    """Strava refused to connect one more athlete to the application (its capacity)."""
    text = json.dumps(body or {}).lower()
    return "connected athletes" in text


def error_summary(body: dict[str, Any] | None) -> str:
    """Strava's error as ``message (resource.field code; ...)`` or OAuth's ``error``, no values."""
    if not body:
        return "no details"
    if isinstance(body.get("error"), str):  # RFC 6749 style, e.g. invalid_grant
        return str(body["error"])
    parts = []
    for item in body.get("errors") or []:
        if isinstance(item, dict):
            parts.append(f"{item.get('resource')}.{item.get('field')} {item.get('code')}")
    message = str(body.get("message") or "error")
    return f"{message} ({'; '.join(parts)})" if parts else message


class StravaOAuth:
    """The app's side of Strava OAuth; one per process (see the module docstring)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        client_id: str,
        client_secret: str | SecretStr,
        oauth_url: str = DEFAULT_OAUTH_URL,
        clock: Clock = utcnow,
        timeout_s: float = 30.0,
        own_app: bool = False,
    ) -> None:
        self._http = http
        self.client_id = client_id
        # Whose credentials these are, to name the right ones when Strava refuses them.
        self._credentials = (
            "the destination's config.client_id and secrets.client_secret"
            if own_app
            else "PELOSYNC_STRAVA_CLIENT_ID and PELOSYNC_STRAVA_CLIENT_SECRET"
        )
        self._secret = (
            client_secret.get_secret_value()
            if isinstance(client_secret, SecretStr)
            else client_secret
        )
        self.oauth_url = oauth_url.rstrip("/")
        self._clock = clock
        self._timeout = timeout_s
        self._inflight: dict[str, asyncio.Task[StravaTokens]] = {}
        self._rotated: dict[str, tuple[StravaTokens, float]] = {}

    def authorize_url(self, redirect_uri: str, state: str, scope: str = DEFAULT_SCOPE) -> str:
        return authorize_url(self.client_id, redirect_uri, state, scope, oauth_url=self.oauth_url)

    async def exchange_code(self, code: str) -> StravaTokens:
        """Trade the callback's ``code`` for tokens (and the athlete)."""
        return await self._token({"grant_type": "authorization_code", "code": code}, code)

    async def refresh(self, refresh_token: str) -> StravaTokens:
        """New tokens for ``refresh_token``; concurrent calls with the same token share one
        request, and callers arriving shortly after with the old token get the same result."""
        key = _fingerprint(refresh_token)
        now = self._clock().timestamp()
        for stale in [k for k, (_, at) in self._rotated.items() if now - at > ROTATION_MEMORY_S]:
            del self._rotated[stale]
        if key in self._rotated:
            return self._rotated[key][0]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(
                self._token({"grant_type": "refresh_token", "refresh_token": refresh_token}, key)
            )
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        tokens = await asyncio.shield(task)
        self._rotated[key] = (tokens, self._clock().timestamp())
        return tokens

    def holds_secret(self, client_secret: str | SecretStr) -> bool:
        """Whether this client was built with ``client_secret`` (an edited destination's
        application gets a new client)."""
        value = (
            client_secret.get_secret_value()
            if isinstance(client_secret, SecretStr)
            else client_secret
        )
        return value == self._secret

    async def deauthorize(self, access_token: str) -> None:
        """Revoke the application's access to the athlete of ``access_token``. A refused token
        is :class:`NeedsReauthorization` (expired, or already revoked); no answer, a 5xx or a
        429 the usual retryable errors."""
        redactor = Redactor([self._secret, access_token])
        what = "the deauthorization"
        try:
            response = await self._http.post(
                f"{self.oauth_url}/deauthorize",
                data={"access_token": access_token},
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise transport_error(SERVICE, what, exc) from None
        if response.is_success:
            log.info("strava.oauth.deauthorized")
            return
        if response.status_code == 401:
            raise NeedsReauthorization(
                "Strava refused the access token to deauthorize",
                remote_status=401,
                response_excerpt=redactor.excerpt(response),
            )
        raise status_error(SERVICE, what, response, now=self._clock(), redactor=redactor)

    async def _token(self, grant: dict[str, str], credential: str) -> StravaTokens:
        redactor = Redactor([self._secret, credential, *grant.values()])
        what = "the token request"
        data = {"client_id": self.client_id, "client_secret": self._secret, **grant}
        try:
            response = await self._http.post(
                f"{self.oauth_url}/token",
                data=data,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise transport_error(SERVICE, what, exc) from None
        body = json_object(response)
        if response.is_success and body is not None:
            return self._parse(body, grant)
        if response.is_success:
            raise DeliveryError(
                "Strava's token endpoint answered without a JSON object",
                remote_status=response.status_code,
            )
        summary = error_summary(body)
        status = response.status_code
        log.warning("strava.oauth.refused", grant=grant["grant_type"], status=status)
        if status == 429:
            raise Postponed(
                "Strava is rate limiting token requests",
                remote_status=status,
                retry_after=retry_after(response, self._clock()) or 900.0,
            )
        if status in (400, 401) and _is_client_problem(body):
            raise DeliveryError(
                f"Strava refused the app's client credentials ({summary}); check "
                f"{self._credentials}",
                remote_status=status,
            )
        if status == 403 and athlete_limit_reached(body):
            # Strava shows this on its own authorization page (see strava_app.py); should the
            # token exchange ever answer it, it gets the same explanation.
            raise NeedsReauthorization(ATHLETE_LIMIT, remote_status=status)
        if status in (400, 401):
            what_failed = "authorization code" if "code" in grant else "refresh token"
            raise NeedsReauthorization(
                f"Strava refused the {what_failed} ({summary}); authorize the destination again",
                remote_status=status,
                response_excerpt=redactor.excerpt(response),
            )
        raise status_error(SERVICE, what, response, now=self._clock(), redactor=redactor)

    def _parse(self, body: dict[str, Any], grant: dict[str, str]) -> StravaTokens:
        access, refresh, expires = (
            body.get("access_token"),
            body.get("refresh_token"),
            body.get("expires_at"),
        )
        if not isinstance(access, str) or not isinstance(expires, int | float):
            raise DeliveryError("Strava's token answer lacks access_token or expires_at")
        if not isinstance(refresh, str):
            # A refresh answer always carries one; keep the old token if it ever does not.
            refresh = grant.get("refresh_token")
            if refresh is None:
                raise DeliveryError("Strava's token answer lacks refresh_token")
        athlete = body.get("athlete")
        scope = body.get("scope")
        return StravaTokens(
            access_token=access,
            refresh_token=refresh,
            expires_at=int(expires),
            athlete=athlete if isinstance(athlete, dict) else None,
            scope=scope if isinstance(scope, str) else None,
        )


def _is_client_problem(body: dict[str, Any] | None) -> bool:
    """True when Strava blames the application (client id/secret), not the user's grant."""
    if not body:
        return False
    if body.get("error") == "invalid_client":
        return True
    return any(
        isinstance(item, dict) and item.get("field") in ("client_id", "client_secret")
        for item in body.get("errors") or []
    )
