"""The Garmin Connect destination kind (experimental; only with ``PELOSYNC_GARMIN_ENABLED``).

Garmin has no public upload API for individuals; this uses the endpoint Garmin's own apps use,
``POST https://connectapi.garmin.com/upload-service/upload/.fit`` (multipart ``file``, Bearer
token, and the headers the apps send: ``NK: NT``, ``Origin: https://sso.garmin.com`` and a
Garmin Connect mobile ``User-Agent``). It can break whenever Garmin changes things.

Credentials. Since March 2026 Cloudflare blocks scripted logins to Garmin SSO, so pelosync
never logs in: the destination's secrets hold tokens the user obtained themselves:

* ``access_token`` (required): a Garmin "DI" OAuth2 access token (a JWT, valid about a day).
* ``refresh_token`` and ``client_id`` (optional, recommended): the DI refresh token (valid about
  30 days) and the DI client id it was issued to (e.g. ``GARMIN_CONNECT_MOBILE_ANDROID_DI``;
  read from the token's ``client_id`` claim when not given). With them pelosync refreshes the
  access token itself, at ``PELOSYNC_GARMIN_TOKEN_URL``
  (``https://diauth.garmin.com/di-oauth2-service/oauth/token``, ``grant_type=refresh_token``,
  HTTP Basic with the client id and an empty password) and returns the rotated tokens to be
  stored. The token URL comes from the settings, never from a destination, so tokens are only
  ever sent to the operator's configured host.
* ``expires_at`` (optional, epoch seconds): read from the token's ``exp`` claim when absent.

How a user gets them, on their own computer:

1. With python-garminconnect (0.3+), which logs in like the mobile app, MFA included:
   ``Garmin(email, password).login("~/.garminconnect")`` writes ``garmin_tokens.json`` with
   ``di_token``, ``di_refresh_token`` and ``di_client_id``: paste them as ``access_token``,
   ``refresh_token`` and ``client_id``.
2. The "service ticket" way (peloton-to-garmin's docs, ``garmin-service-ticket.md``): sign in
   at Garmin Connect in a browser with the developer tools open, copy the ``serviceTicketId``
   (``ST-...``) from the SSO response, and exchange it at the DI token URL (form
   ``grant_type=https://connectapi.garmin.com/di-oauth2-service/oauth/grant/service_ticket``,
   ``client_id``, ``service_ticket``, ``service_url``; HTTP Basic with the client id). The
   answer's ``access_token``/``refresh_token`` go into the secrets as above.

When the refresh token finally expires (about a month) the destination is parked with
:class:`NeedsReauthorization` until new tokens are pasted.

Answers: 2xx delivered, with the new activity's id (``detailedImportResult.successes[0].
internalId``) or, while Garmin is still processing, ``upload:<uploadId>``; 409, or a failure
with message code 202, is a duplicate: delivered with the existing activity's id; 401 refreshes
once (when possible), else :class:`NeedsReauthorization`; 429 :class:`Postponed`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field

from service.config import Settings
from service.convert.fit import FitDevice
from service.convert.model import Discipline
from service.destinations.kinds.base import (
    Delivered,
    DeliveryError,
    DeliveryRequest,
    NeedsReauthorization,
    PermanentFailure,
    Postponed,
)
from service.destinations.kinds.garmin_devices import fit_device_for as _fit_device_for
from service.destinations.kinds.http_common import (
    Clock,
    Redactor,
    Sleep,
    json_object,
    retry_after,
    status_error,
    transport_error,
    utcnow,
)
from service.destinations.kinds.spec import (
    TOKEN_PATTERN,
    KindSpec,
    decrypted_secrets,
    stored_config,
)
from service.errors import InvalidInput

if TYPE_CHECKING:
    from service.destinations.models import Destination
    from service.runtime import Runtime

log = structlog.get_logger(__name__)

SERVICE = "Garmin Connect"
DEFAULT_UPLOAD_URL = "https://connectapi.garmin.com/upload-service/upload"
DEFAULT_TOKEN_URL = "https://diauth.garmin.com/di-oauth2-service/oauth/token"
DEFAULT_PROFILE_URL = "https://connectapi.garmin.com/userprofile-service/socialProfile"
ORIGIN = "https://sso.garmin.com"
FORMATS = ("fit", "tcx", "gpx")
DUPLICATE_CODE = 202  # detailedImportResult failure message: "Duplicate Activity."
REFRESH_MARGIN_S = 600
RATE_LIMIT_WAIT_S = 900.0
UPLOAD_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0


class GarminConfig(BaseModel):
    """A Garmin Connect destination's settings (no secrets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_agent: str = Field(default="GCM-iOS-5.7.2.1", min_length=1, max_length=200)


def fit_device_for(discipline: Discipline | str) -> FitDevice:
    """The device Garmin's FIT should claim (see :mod:`.garmin_devices`)."""
    return _fit_device_for(discipline)


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (only to read ``exp`` and ``client_id``); {} if the
    token is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _import_result(body: Mapping[str, Any] | None) -> tuple[str | None, str | None, list[str]]:
    """(new activity id, duplicate's existing id, other failure messages) of an upload answer."""
    result = (body or {}).get("detailedImportResult")
    if not isinstance(result, dict):
        return None, None, []
    created = None
    for success in result.get("successes") or []:
        if isinstance(success, dict) and success.get("internalId") is not None:
            created = str(success["internalId"])
            break
    duplicate, problems = None, []
    for failure in result.get("failures") or []:
        if not isinstance(failure, dict):
            continue
        messages = [m for m in failure.get("messages") or [] if isinstance(m, dict)]
        if any(m.get("code") == DUPLICATE_CODE for m in messages):
            internal = failure.get("internalId")
            duplicate = str(internal) if internal is not None else duplicate or ""
        else:
            problems += [f"{m.get('code')}: {m.get('content')}" for m in messages] or ["failed"]
    return created, duplicate, problems


class GarminDestination:
    """One Garmin Connect account as a destination (implements ``DestinationKindHandler``)."""

    fit_device_for = staticmethod(fit_device_for)

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: GarminConfig,
        secrets: Mapping[str, Any],
        *,
        enabled: bool,
        upload_url: str = DEFAULT_UPLOAD_URL,
        token_url: str = DEFAULT_TOKEN_URL,
        profile_url: str = DEFAULT_PROFILE_URL,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self.config = config
        self._secrets = dict(secrets)
        self._enabled = enabled
        self._upload_url = upload_url.rstrip("/")
        self._token_url = token_url
        self._profile_url = profile_url
        self._clock = clock
        self._sleep = sleep
        self._dirty = False
        self._refreshed = False
        self._redactor = Redactor([secrets.get("access_token"), secrets.get("refresh_token")])

    @classmethod
    def from_settings(
        cls,
        http: httpx.AsyncClient,
        config: GarminConfig,
        secrets: Mapping[str, Any],
        settings: Settings,
        **kwargs: Any,
    ) -> GarminDestination:
        return cls(
            http,
            config,
            secrets,
            enabled=settings.garmin_enabled,
            upload_url=settings.garmin_upload_url,
            token_url=settings.garmin_token_url,
            profile_url=settings.garmin_profile_url,
            **kwargs,
        )

    @property
    def secrets(self) -> dict[str, Any]:
        return dict(self._secrets)

    async def deliver(self, request: DeliveryRequest) -> Delivered:
        file = request.file
        if file.format not in FORMATS:
            raise PermanentFailure(f"Garmin Connect takes FIT, TCX or GPX, not {file.format!r}")
        files = {"file": (file.filename, file.data, "application/octet-stream")}
        return await self._run(
            "POST", f"{self._upload_url}/.{file.format}", "the upload", self._uploaded, files=files
        )

    async def ping(self) -> Delivered:
        """Check the token with Garmin's social-profile endpoint."""
        return await self._run("GET", self._profile_url, "the profile check", self._profile)

    # --- answers ----------------------------------------------------------------------------

    def _uploaded(self, response: httpx.Response) -> Delivered:
        body = json_object(response)
        created, duplicate, problems = _import_result(body)
        excerpt = self._redactor.excerpt(response)
        if response.status_code == 409 or (response.is_success and duplicate is not None):
            log.info("garmin.upload.duplicate", activity=duplicate)
            return Delivered(response.status_code, duplicate or None, excerpt)
        if not response.is_success:
            raise status_error(
                SERVICE, "the upload", response, now=self._clock(), redactor=self._redactor
            )
        if created is None and problems:
            raise PermanentFailure(
                f"Garmin Connect did not import the file: {'; '.join(problems)[:500]}",
                remote_status=response.status_code,
                response_excerpt=excerpt,
            )
        if created is None:
            result = (body or {}).get("detailedImportResult") or {}
            upload = result.get("uploadId") if isinstance(result, dict) else None
            created = f"upload:{upload}" if upload is not None else None
        return Delivered(response.status_code, created, excerpt)

    def _profile(self, response: httpx.Response) -> Delivered:
        body = json_object(response)
        if not response.is_success or body is None:
            raise status_error(
                SERVICE, "the profile check", response, now=self._clock(), redactor=self._redactor
            )
        name = body.get("displayName") or body.get("userName")
        return Delivered(response.status_code, str(name) if name else None, "token accepted")

    # --- HTTP and tokens ------------------------------------------------------------------------

    async def _run(
        self,
        method: str,
        url: str,
        what: str,
        judge: Callable[[httpx.Response], Delivered],
        **kwargs: Any,
    ) -> Delivered:
        if not self._enabled:
            raise PermanentFailure(
                "Garmin Connect delivery is experimental and disabled; set "
                "PELOSYNC_GARMIN_ENABLED=true to use it"
            )
        self._refreshed = False
        try:
            response = await self._send(method, url, what, **kwargs)
            result = judge(response)
        except DeliveryError as exc:
            if self._dirty and exc.updated_secrets is None:
                exc.updated_secrets = self.secrets
            raise
        if self._dirty:
            result = Delivered(
                result.status_code, result.external_id, result.response_excerpt, self.secrets
            )
        return result

    async def _send(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        while True:
            token = await self._access_token()
            headers = {
                "Authorization": f"Bearer {token}",
                "NK": "NT",
                "Origin": ORIGIN,
                "User-Agent": self.config.user_agent,
                "Accept": "application/json",
            }
            timeout = UPLOAD_TIMEOUT_S if method == "POST" else REQUEST_TIMEOUT_S
            try:
                response = await self._http.request(
                    method, url, headers=headers, timeout=timeout, **kwargs
                )
            except httpx.HTTPError as exc:
                raise transport_error(SERVICE, what, exc) from None
            if response.status_code == 429:
                wait = retry_after(response, self._clock())
                raise Postponed(
                    f"Garmin Connect is rate limiting {what}",
                    remote_status=429,
                    retry_after=RATE_LIMIT_WAIT_S if wait is None else wait,
                )
            if response.status_code != 401:
                return response
            if self._refreshed or not self._can_refresh():
                raise NeedsReauthorization(
                    f"Garmin Connect refused the access token for {what}; paste new tokens "
                    "into the destination",
                    remote_status=401,
                    response_excerpt=self._redactor.excerpt(response),
                )
            await self._refresh()

    def _client_id(self) -> str | None:
        client = self._secrets.get("client_id")
        if isinstance(client, str) and client:
            return client
        claim = jwt_claims(str(self._secrets.get("access_token") or "")).get("client_id")
        return claim if isinstance(claim, str) and claim else None

    def _can_refresh(self) -> bool:
        refresh = self._secrets.get("refresh_token")
        return isinstance(refresh, str) and bool(refresh) and self._client_id() is not None

    async def _access_token(self) -> str:
        token = self._secrets.get("access_token")
        if not isinstance(token, str) or not token:
            if self._can_refresh() and not self._refreshed:
                await self._refresh()
                return str(self._secrets["access_token"])
            raise NeedsReauthorization("the Garmin destination has no access_token; add one")
        expires = self._secrets.get("expires_at", jwt_claims(token).get("exp"))
        soon = isinstance(expires, int | float) and expires - self._clock().timestamp() < (
            REFRESH_MARGIN_S
        )
        if soon and self._can_refresh() and not self._refreshed:
            await self._refresh()
            return str(self._secrets["access_token"])
        return token

    async def _refresh(self) -> None:
        self._refreshed = True
        client_id = self._client_id() or ""
        refresh = str(self._secrets["refresh_token"])
        try:
            response = await self._http.post(
                self._token_url,
                data={
                    "grant_type": "refresh_token",
                    "client_id": client_id,
                    "refresh_token": refresh,
                },
                headers={
                    "Authorization": "Basic " + base64.b64encode(f"{client_id}:".encode()).decode(),
                    "Accept": "application/json",
                    "User-Agent": self.config.user_agent,
                },
                timeout=REQUEST_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            raise transport_error(SERVICE, "the token refresh", exc) from None
        body = json_object(response)
        if response.status_code in (400, 401, 403):
            raise NeedsReauthorization(
                f"Garmin refused the refresh token (HTTP {response.status_code}); paste new "
                "tokens into the destination",
                remote_status=response.status_code,
                response_excerpt=self._redactor.excerpt(response),
            )
        if not response.is_success:
            raise status_error(
                SERVICE, "the token refresh", response, now=self._clock(), redactor=self._redactor
            )
        if body is None or not isinstance(body.get("access_token"), str):
            raise DeliveryError(
                "Garmin's token answer has no access_token", remote_status=response.status_code
            )
        access = str(body["access_token"])
        self._redactor.add(access, body.get("refresh_token"))
        self._secrets["access_token"] = access
        if isinstance(body.get("refresh_token"), str):
            self._secrets["refresh_token"] = body["refresh_token"]
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float):
            self._secrets["expires_at"] = int(self._clock().timestamp() + expires_in)
        else:
            self._secrets.pop("expires_at", None)  # fall back to the new token's exp claim
        self._secrets.setdefault("client_id", client_id)
        self._dirty = True
        log.info("garmin.token.refreshed")


# --- the kind's entry in the registry -----------------------------------------------------------

GARMIN_OFF = (
    "kind: Garmin Connect uploads are experimental and off: set PELOSYNC_GARMIN_ENABLED=true "
    "and restart pelosync to use them"
)


class GarminSecrets(BaseModel):
    """The secrets a user sets: the tokens of Garmin's login (from a login script)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    access_token: str = Field(min_length=1, max_length=8192, pattern=TOKEN_PATTERN)
    refresh_token: str | None = Field(
        default=None, min_length=1, max_length=8192, pattern=TOKEN_PATTERN
    )
    client_id: str | None = Field(default=None, min_length=1, max_length=200, pattern=TOKEN_PATTERN)
    expires_at: int | None = Field(default=None, ge=0, le=2**40)


def _check_available(settings: Settings) -> None:
    if not settings.garmin_enabled:
        raise InvalidInput(GARMIN_OFF, field="kind")


def _fit_device(destination: Destination, discipline: str) -> FitDevice:
    try:
        return fit_device_for(Discipline(discipline))
    except ValueError:
        return fit_device_for(Discipline.OTHER)


def _handler(runtime: Runtime, destination: Destination) -> GarminDestination:
    return GarminDestination.from_settings(
        runtime.http,
        stored_config(GarminConfig, destination),
        decrypted_secrets(runtime, destination),
        runtime.settings,
        clock=runtime.clock,
        sleep=runtime.sleep,
    )


KIND = "garmin"
SPEC = KindSpec(
    kind=KIND,
    label="Garmin Connect",
    config_model=GarminConfig,
    factory=_handler,
    secrets_model=GarminSecrets,
    check_available=_check_available,
    fit_device=_fit_device,
    config_doc="`user_agent`",
    secrets_doc="`access_token`, `refresh_token`, `client_id`",
    # Its tokens come from a login script: the API adds it.
    addable=False,
)
