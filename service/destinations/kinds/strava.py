"""The Strava destination kind: upload a workout file, wait for Strava to process it.

What every destination on one Strava API application shares comes in a
:class:`~.strava_app.StravaApp` (one per application, injected): the API URL, the
:class:`~.strava_oauth.StravaOAuth` client holding the app's secret, and the app's
:class:`~service.destinations.ratelimit.StravaRateLimiter`. Per destination: the
:class:`StravaConfig` (no secrets; ``client_id`` when it has its own application, see
:mod:`.strava_app`) and the decrypted secrets dict (``access_token``, ``refresh_token``,
``expires_at``, ``athlete_id``, ``scope``, see :meth:`~.strava_oauth.StravaTokens.as_secrets`;
``client_secret`` with its own application).

Delivering (``POST {api}/uploads``, then ``GET {api}/uploads/{id}``):

* The access token is refreshed when it expires within 10 minutes; a 401 triggers one refresh
  and one retry; a second refusal, or a refused refresh, is :class:`NeedsReauthorization`. A
  401 naming a missing permission (the athlete unticked "Upload your activities") is
  :class:`NeedsReauthorization` at once, naming the scope: a refresh keeps the same scopes.
  Whenever tokens rotate, the full new secrets come back as ``updated_secrets`` (on success and
  on failure alike) for the engine to store in place of the old ones.
* FIT goes as is; TCX and GPX are gzipped (``tcx.gz``/``gpx.gz``: text shrinks about tenfold,
  FIT hardly at all). ``trainer`` is 1 for indoor workouts, ``commute`` 0, ``external_id``
  ``pelosync-<peloton workout id>-<format>``.
* Polling starts after 2 s (Strava asks for >= 1 s; processing takes about 2 s), backs off to
  10 s, and stops after 60 s in all (``StravaConfig``). ``activity_id`` set: delivered. An
  ``error`` naming a duplicate ("... duplicate of activity 123", or a link to
  ``/activities/123``): delivered, with the existing activity's id. Any other error: permanent.
* Resuming instead of re-uploading. Strava's ``external_id`` is not an idempotency key (it is
  only echoed back), so uploading again while the first upload is still processing could
  create a second activity. Once ``POST /uploads`` has answered, the upload id is kept in the
  destination's secrets under ``pending_uploads[<delivery id>]`` and returned as
  ``updated_secrets`` with whatever error ends the attempt (polling ran out of time:
  :class:`UploadStillProcessing`; rate limit hit while polling; Strava failing). The next
  attempt for that delivery polls the stored upload instead of uploading again, and the entry
  is removed when it resolves (entries older than 7 days are dropped). If the entry is lost
  (say the engine kept an older copy of the secrets), re-uploading is still safe in the end:
  Strava answers "duplicate of activity N" and the delivery resolves to N.
* Rate limits: every request first asks the shared limiter; a used-up window, or a 429, is
  :class:`Postponed` until the window resets (never a failure).
"""

from __future__ import annotations

import asyncio
import gzip
import re
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field

from service.destinations.kinds.base import (
    Delivered,
    DeliveryError,
    DeliveryRequest,
    OutgoingFile,
    PermanentFailure,
    WorkoutInfo,
)
from service.destinations.kinds.http_common import Clock, Sleep, activity_text, json_object, utcnow
from service.destinations.kinds.spec import (
    FormField,
    KindSpec,
    Validated,
    decrypted_secrets,
    stored_config,
)
from service.destinations.kinds.strava_app import (
    StravaApp,
    StravaSecrets,
    check_app,
    strava_app,
    validate_app,
)
from service.destinations.kinds.strava_session import PENDING_KEY, StravaSession

if TYPE_CHECKING:
    from service.destinations.models import Destination
    from service.runtime import Runtime

log = structlog.get_logger(__name__)

# The kind's public names, importable from here (``PENDING_KEY`` and ``StravaApp`` live beside it).
__all__ = [
    "KIND",
    "PENDING_KEY",
    "SPEC",
    "StravaApp",
    "StravaConfig",
    "StravaDestination",
    "UploadStillProcessing",
    "external_id_for",
    "strava_app",
]

DATA_TYPES = ("fit", "tcx", "gpx")

# "x.fit duplicate of activity 123" or "duplicate of <a href='/activities/123'>..."
_DUPLICATE = re.compile(r"duplicate of\s+(?:activity\s+(\d+)|.*?/activities/(\d+))", re.I | re.S)


class StravaConfig(BaseModel):
    """A Strava destination's settings (stored in the destination's config; no secrets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,20}$",
        description="The Client ID of the destination's own Strava API application (with "
        "secrets.client_secret); unset: the service's PELOSYNC_STRAVA_CLIENT_ID application.",
    )
    gzip_text: bool = Field(default=True, description="Gzip TCX and GPX before uploading.")
    poll_first_s: float = Field(default=2.0, ge=1.0, le=60.0)
    poll_max_interval_s: float = Field(default=10.0, ge=1.0, le=120.0)
    poll_budget_s: float = Field(default=60.0, gt=0, le=900.0)
    resume_after_s: float = Field(default=60.0, ge=1.0, description="Retry delay to re-poll.")


class UploadStillProcessing(DeliveryError):
    """Strava took the file but had not finished processing it when polling stopped. The
    upload id is in the message, on ``upload_id`` and in ``updated_secrets``; the next attempt
    polls it instead of uploading again."""

    def __init__(self, message: str, *, upload_id: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.upload_id = upload_id


def external_id_for(workout: WorkoutInfo, file: OutgoingFile) -> str:
    """The external id pelosync gives an upload: stable across retries."""
    return f"pelosync-{workout.peloton_workout_id}-{file.format}"


class StravaDestination(StravaSession):
    """One Strava account as a destination (implements ``DestinationKindHandler``)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: StravaConfig,
        secrets: Mapping[str, Any],
        *,
        app: StravaApp,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(http, secrets, app=app, clock=clock)
        self.config = config
        self._sleep = sleep
        self._open: tuple[str, int] | None = None  # (delivery key, upload id) not yet resolved

    # --- public API -------------------------------------------------------------------------

    async def deliver(self, request: DeliveryRequest) -> Delivered:
        return await self._guard(self._deliver(request))

    async def ping(self) -> Delivered:
        """Check the authorization with ``GET /athlete`` (refreshing the token if needed)."""
        return await self._guard(self._ping())

    async def _guard(self, operation: Coroutine[Any, Any, Delivered]) -> Delivered:
        """Run one operation; whatever ends it carries the secrets if they changed (rotated
        tokens, or an upload left to resume)."""
        self._refreshed, self._open = False, None
        try:
            result = await operation
        except DeliveryError as exc:
            if self._open is not None:
                self._remember(*self._open)
            if self._dirty:
                exc.updated_secrets = self.secrets
            raise
        if self._dirty and result.updated_secrets is None:
            result = Delivered(
                status_code=result.status_code,
                external_id=result.external_id,
                response_excerpt=result.response_excerpt,
                updated_secrets=self.secrets,
            )
        return result

    async def _ping(self) -> Delivered:
        response = await self._api("GET", "/athlete", what="the athlete check")
        body = json_object(response)
        if not response.is_success or body is None:
            raise self._error("the athlete check", response)
        athlete = body.get("id")
        return Delivered(
            status_code=response.status_code,
            external_id=str(athlete) if athlete is not None else None,
            response_excerpt=f"authorized as Strava athlete {athlete}",
        )

    async def _deliver(self, request: DeliveryRequest) -> Delivered:
        key = str(request.delivery_id)
        data_type, filename, payload = self._prepare(request.file)
        pending = self._pending().get(key)
        if pending is not None:
            log.info("strava.upload.resume", delivery_id=request.delivery_id, upload=pending)
            resumed = await self._poll(pending, key, first_delay=0.0)
            if resumed is not None:
                return resumed
        name, description = activity_text(request.workout)
        fields = {
            "data_type": data_type,
            "name": name,
            "description": description,
            "trainer": "0" if request.workout.is_outdoor else "1",
            "commute": "0",
            "external_id": external_id_for(request.workout, request.file),
        }
        files = {"file": (filename, payload, "application/octet-stream")}
        response = await self._api(
            "POST", "/uploads", what="the upload", upload=True, data=fields, files=files
        )
        body = json_object(response)
        if not response.is_success:
            # Only a 4xx naming the duplicate counts (a 5xx saying "duplicate key" does not).
            if response.status_code < 500 and _DUPLICATE.search(response.text[:4096]):
                return self._duplicate(response.text[:4096], response)
            raise self._error("the upload", response, body)
        upload_id = (body or {}).get("id")
        if not isinstance(upload_id, int):
            raise DeliveryError(
                "Strava accepted the upload but its answer has no upload id",
                remote_status=response.status_code,
                response_excerpt=self._redactor.excerpt(response),
            )
        log.info("strava.upload.accepted", delivery_id=request.delivery_id, upload=upload_id)
        outcome = self._outcome(body or {}, response)
        if outcome is not None:
            return outcome
        resolved = await self._poll(upload_id, key, first_delay=self.config.poll_first_s)
        if resolved is None:  # Strava no longer knows the upload it just gave us
            raise DeliveryError(f"Strava lost upload {upload_id} while processing it")
        return resolved

    # --- uploads ----------------------------------------------------------------------------

    def _prepare(self, file: OutgoingFile) -> tuple[str, str, bytes]:
        if file.format not in DATA_TYPES:
            raise PermanentFailure(
                f"Strava takes FIT, TCX or GPX files, not {file.format!r}; "
                "change the destination's formats"
            )
        if self.config.gzip_text and file.format in ("tcx", "gpx"):
            return f"{file.format}.gz", f"{file.filename}.gz", gzip.compress(file.data, mtime=0)
        return file.format, file.filename, file.data

    async def _poll(self, upload_id: int, key: str, *, first_delay: float) -> Delivered | None:
        """Poll until the upload resolves; None if Strava does not know it (404)."""
        waited, delay = 0.0, first_delay
        what = f"upload {upload_id}"
        self._open = (key, upload_id)
        while True:
            if delay:
                if waited + delay > self.config.poll_budget_s:
                    raise UploadStillProcessing(
                        f"Strava is still processing upload {upload_id} after {waited:.0f} s; "
                        "the next attempt checks it again instead of uploading again",
                        upload_id=upload_id,
                        retry_after=self.config.resume_after_s,
                    )
                await self._sleep(delay)
                waited += delay
            response = await self._api("GET", f"/uploads/{upload_id}", what=what)
            if response.status_code == 404:
                self._settle(key)
                return None
            body = json_object(response)
            if not response.is_success or body is None:
                raise self._error(f"the status of {what}", response, body)
            try:
                outcome = self._outcome(body, response)
            except PermanentFailure:
                self._settle(key)
                raise
            if outcome is not None:
                self._settle(key)
                return outcome
            delay = min(max(delay, self.config.poll_first_s) * 1.6, self.config.poll_max_interval_s)

    def _outcome(self, body: dict[str, Any], response: httpx.Response) -> Delivered | None:
        """Delivered, None while processing, or PermanentFailure for a processing error."""
        activity_id = body.get("activity_id")
        if activity_id is not None:
            return Delivered(
                status_code=response.status_code,
                external_id=str(activity_id),
                response_excerpt=self._redactor.excerpt(response),
            )
        error = body.get("error")
        if error and "duplicate" in str(error).lower():
            return self._duplicate(str(error), response)
        if error:
            raise PermanentFailure(
                f"Strava could not process the file: {self._redactor.text(str(error))}",
                remote_status=response.status_code,
                response_excerpt=self._redactor.excerpt(response),
            )
        status = str(body.get("status") or "")
        if "deleted" in status.lower():
            raise PermanentFailure(f"Strava: {status}", remote_status=response.status_code)
        return None

    def _duplicate(self, text: str, response: httpx.Response) -> Delivered:
        """Strava says duplicate: delivered, with the existing activity's id if it names it."""
        match = _DUPLICATE.search(text)
        existing = (match.group(1) or match.group(2)) if match else None
        log.info("strava.upload.duplicate", activity=existing)
        return Delivered(
            status_code=response.status_code,
            external_id=existing,
            response_excerpt=self._redactor.excerpt(response),
        )

    def _settle(self, key: str) -> None:
        """The upload resolved (either way): nothing left to resume."""
        self._open = None
        self._forget(key)


# --- the kind's entry in the registry -----------------------------------------------------------


def _validate(config: Mapping[str, Any], secrets: Mapping[str, Any]) -> Validated:
    return validate_app(StravaConfig, config, secrets)


def _handler(runtime: Runtime, destination: Destination) -> StravaDestination:
    secrets = decrypted_secrets(runtime, destination)
    return StravaDestination(
        runtime.http,
        stored_config(StravaConfig, destination),
        secrets,
        app=strava_app(runtime, destination, secrets),
        clock=runtime.clock,
        sleep=runtime.sleep,
    )


KIND = "strava"
SPEC = KindSpec(
    kind=KIND,
    label="Strava",
    config_model=StravaConfig,
    factory=_handler,
    secrets_model=StravaSecrets,
    secrets_refused=(
        "secrets: a Strava destination gets its tokens by connecting "
        "(GET /v1/destinations/{id}/strava/connect); the only secret to give is "
        "client_secret, with config.client_id, for the destination's own Strava application"
    ),
    validate=_validate,
    check_config=check_app,
    form_note=(
        "After adding it, connect it to a Strava account. A second rider needs the shared "
        "Strava application's athlete capacity raised by Strava, or an application of their "
        "own: give its Client ID and Client Secret here."
    ),
    form_fields=(
        FormField(
            "client_id",
            "Own Strava application: Client ID",
            placeholder="blank: the service's application",
            help="From the rider's strava.com/settings/api; with its Client Secret.",
        ),
        FormField(
            "client_secret",
            "Own Strava application: Client Secret",
            input="password",
            secret=True,
        ),
    ),
    config_doc="`client_id` of the destination's own Strava application (optional), upload tuning",
    secrets_doc=(
        "`client_secret` of its own Strava application, with `config.client_id` (the tokens "
        "come from the connect link)"
    ),
)
