"""The Garmin Connect destination kind (experimental; only with ``PELOSYNC_GARMIN_ENABLED``).

Garmin has no public upload API for individuals; this uses the endpoint Garmin's own apps use,
``POST https://connectapi.garmin.com/upload-service/upload/.fit`` (multipart ``file``, Bearer
token, Garmin Connect Mobile's headers (:func:`.garmin_auth.native_headers`) and the import
headers peloton-to-garmin sends, ``NK: NT`` and ``Origin: https://sso.garmin.com``). It can break
whenever Garmin changes things.

Credentials (:mod:`.garmin_auth`). pelosync never signs in to Garmin; the destination is given a
service ticket (``ST-…``) from the user's browser sign-in, which pelosync trades for DI tokens
when the destination is saved, or the token file python-garminconnect writes. The secrets then
hold ``access_token`` (about a day), ``refresh_token`` (about 30 days from the sign-in),
``client_id``, ``expires_at`` and ``refresh_token_expires_at``. The access token is refreshed at
``PELOSYNC_GARMIN_TOKEN_URL`` (from the settings, never from a destination, so tokens only ever
go to the operator's configured host) and the rotated tokens are returned to be stored. When the
refresh token expires the destination is parked with :class:`NeedsReauthorization` until it is
given a new ticket or token file.

Answers: 2xx delivered, with the new activity's id (``detailedImportResult.successes[0].
internalId``) or, while Garmin is still processing, ``upload:<uploadId>``; 409, or a failure
with message code 202 ("Duplicate Activity."), is a duplicate: Garmin already has an activity
starting at the same time (a watch's recording of the same ride, or an earlier upload), so it is
delivered with that activity's id and an excerpt starting "duplicate of activity <id>"; 401
refreshes once (when possible), else :class:`NeedsReauthorization`; 429 :class:`Postponed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
import structlog

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
from service.destinations.kinds.garmin_answers import import_result
from service.destinations.kinds.garmin_auth import (
    DEFAULT_CLIENT_IDS,
    DEFAULT_SERVICE_URL,
    DEFAULT_TOKEN_URL,
    DiAuth,
    jwt_claims,
    native_headers,
)
from service.destinations.kinds.garmin_devices import AUTO, device_for
from service.destinations.kinds.garmin_setup import (
    CONFIG_DOC,
    FORM_FIELDS,
    FORM_NOTE,
    SECRETS_DOC,
    GarminConfig,
    GarminSecrets,
    credentials_note,
    prepare_secrets,
)
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
from service.destinations.kinds.spec import KindSpec, decrypted_secrets, stored_config
from service.errors import InvalidInput

if TYPE_CHECKING:
    from service.destinations.models import Destination
    from service.runtime import Runtime

__all__ = ["GarminConfig", "GarminDestination", "fit_device_for", "jwt_claims"]

log = structlog.get_logger(__name__)

SERVICE = "Garmin Connect"
DEFAULT_UPLOAD_URL = "https://connectapi.garmin.com/upload-service/upload"
DEFAULT_PROFILE_URL = "https://connectapi.garmin.com/userprofile-service/socialProfile"
ORIGIN = "https://sso.garmin.com"
FORMATS = ("fit", "tcx", "gpx")
REFRESH_MARGIN_S = 900  # python-garminconnect refreshes 15 minutes before exp
RATE_LIMIT_WAIT_S = 900.0
UPLOAD_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0


def fit_device_for(discipline: Discipline | str, device: str = AUTO) -> FitDevice | None:
    """The device Garmin's FIT should claim (see :mod:`.garmin_devices`)."""
    return device_for(device, discipline)


class GarminDestination:
    """One Garmin Connect account as a destination (implements ``DestinationKindHandler``)."""

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
        client_ids: tuple[str, ...] = DEFAULT_CLIENT_IDS,
        service_url: str = DEFAULT_SERVICE_URL,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self.config = config
        self._secrets = dict(secrets)
        self._enabled = enabled
        self._upload_url = upload_url.rstrip("/")
        self._profile_url = profile_url
        self._clock = clock
        self._sleep = sleep
        self._dirty = False
        self._refreshed = False
        self._redactor = Redactor([secrets.get("access_token"), secrets.get("refresh_token")])
        self.auth = DiAuth(
            http,
            token_url=token_url,
            client_ids=client_ids,
            service_url=service_url,
            user_agent=config.user_agent,
            clock=clock,
            redactor=self._redactor,
        )

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
            client_ids=settings.garmin_client_id_list(),
            service_url=settings.garmin_service_url,
            **kwargs,
        )

    @property
    def secrets(self) -> dict[str, Any]:
        return dict(self._secrets)

    def fit_device_for(self, discipline: Discipline | str) -> FitDevice | None:
        """The device this destination's FIT files claim for ``discipline``."""
        return fit_device_for(discipline, self.config.device)

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
        created, duplicate, problems = import_result(body)
        excerpt = self._redactor.excerpt(response)
        if response.status_code == 409 or (response.is_success and duplicate is not None):
            log.info("garmin.upload.duplicate", activity=duplicate)
            # Garmin keeps one activity per start time: a watch's recording of the same ride,
            # or an earlier upload of this one. Say which, in the attempt log.
            note = f"duplicate of activity {duplicate}" if duplicate else "duplicate of an activity"
            text = f"{note} (Garmin Connect already has an activity starting at this time)"
            return Delivered(
                response.status_code, duplicate or None, f"{text}\n{excerpt or ''}".rstrip()
            )
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
                **native_headers(self.config.user_agent),
                "Authorization": f"Bearer {token}",
                "NK": "NT",
                "Origin": ORIGIN,
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
                    f"Garmin Connect refused the access token for {what}; give the destination "
                    "a new service ticket or token file",
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
            raise NeedsReauthorization(
                "the Garmin destination has no access token; give it a service ticket or token file"
            )
        expires = self._secrets.get("expires_at") or jwt_claims(token).get("exp")
        soon = isinstance(expires, int | float) and expires - self._clock().timestamp() < (
            REFRESH_MARGIN_S
        )
        if soon and self._can_refresh() and not self._refreshed:
            await self._refresh()
            return str(self._secrets["access_token"])
        return token

    async def _refresh(self) -> None:
        self._refreshed = True
        stored_expiry = self._secrets.get("refresh_token_expires_at")
        tokens = await self.auth.refresh(
            self._client_id() or "",
            str(self._secrets["refresh_token"]),
            refresh_expiry=stored_expiry if isinstance(stored_expiry, int) else None,
        )
        fresh = tokens.as_secrets()
        if fresh["refresh_token"] is None:  # not rotated this time: keep the one we have
            fresh["refresh_token"] = self._secrets["refresh_token"]
        # None values stay: the stored secrets are merged with these, and a stale expiry must go.
        self._secrets.update(fresh)
        self._dirty = True


# --- the kind's entry in the registry -----------------------------------------------------------

GARMIN_OFF = (
    "kind: Garmin Connect uploads are experimental and off: set PELOSYNC_GARMIN_ENABLED=true "
    "and restart pelosync to use them"
)


def _check_available(settings: Settings) -> None:
    if not settings.garmin_enabled:
        raise InvalidInput(GARMIN_OFF, field="kind")


def _fit_device(destination: Destination, discipline: str) -> FitDevice | None:
    return fit_device_for(discipline, stored_config(GarminConfig, destination).device)


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
    prepare_secrets=prepare_secrets,
    credentials_note=credentials_note,
    config_doc=CONFIG_DOC,
    secrets_doc=SECRETS_DOC,
    form_fields=FORM_FIELDS,
    form_note=FORM_NOTE,
)
