"""The intervals.icu destination kind: upload a workout file to an athlete's activities.

API (intervals.icu/api-docs.html and the developer's answers on forum.intervals.icu):

* ``POST {api}/api/v1/athlete/{id}/activities``, ``multipart/form-data`` with the file in
  ``file`` (FIT preferred; TCX and GPX work too) and ``name``, ``description`` and
  ``external_id`` as query parameters. The answer is JSON with the new activity's ``id``
  (``"i12345"``; also under ``activities[]``).
* Athlete id ``0`` means "the athlete this key or token belongs to"; ids look like ``i12345``.
* Personal use: HTTP Basic with the *literal* user name ``API_KEY`` and the key from the
  athlete's settings page as the password (a Bearer header does not work with an API key).
  Apps registered for OAuth send ``Authorization: Bearer <access token>``. The secrets hold
  ``api_key`` or ``access_token``.

Duplicates: intervals.icu "won't create duplicate activities (hash of file data is checked)"
(the developer, forum.intervals.icu/t/api-access-to-intervals-icu/609/69): a file it has already
is answered **200** (a new activity is 201) naming the existing activity, which may have come
from another source and carry another ``external_id`` (github.com/jorge-huxley/intervalssync/
pull/58). So a 200 is delivered, resolved to that activity; never a 409, never an error to
retry (retrying would only get the same 200). Retries (attempt 2 onwards) first look for an
activity with our ``external_id`` around the workout's date, so an upload whose answer was lost
is not uploaded twice.

Errors are JSON objects ``{"status": 422, "error": "..."}`` or arrays of them
(``[{"status":422,"error":"Name is too long"}]``: forum.intervals.icu/t/api-access-to-
intervals-icu/609?page=21); the first ``error`` is named either way.

Status mapping: 401/403 :class:`NeedsReauthorization`; 429 :class:`Postponed` (Retry-After);
408/5xx retryable; other 4xx permanent.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.destinations.kinds.base import (
    Delivered,
    DeliveryError,
    DeliveryRequest,
    NeedsReauthorization,
    PermanentFailure,
)
from service.destinations.kinds.http_common import (
    Clock,
    Redactor,
    Sleep,
    activity_text,
    call_api,
    json_object,
    status_error,
    utcnow,
)
from service.destinations.kinds.spec import (
    TOKEN_PATTERN,
    FormField,
    KindSpec,
    decrypted_secrets,
    stored_config,
)

if TYPE_CHECKING:
    from service.destinations.models import Destination
    from service.runtime import Runtime

log = structlog.get_logger(__name__)

SERVICE = "intervals.icu"
DEFAULT_API_URL = "https://intervals.icu"
FORMATS = ("fit", "tcx", "gpx")
UPLOAD_TIMEOUT_S = 120.0


class IntervalsConfig(BaseModel):
    """An intervals.icu destination's settings (no secrets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    athlete_id: str = Field(
        default="0",
        pattern=r"^(0|i?[0-9]+)$",
        description='The athlete ("i12345"); "0" is the athlete of the key or token.',
    )


def basic_auth_header(api_key: str) -> str:
    """``Authorization`` for a personal API key: user ``API_KEY``, password the key."""
    return "Basic " + base64.b64encode(f"API_KEY:{api_key}".encode()).decode()


def external_id_for(request: DeliveryRequest) -> str:
    return f"pelosync-{request.workout.peloton_workout_id}-{request.file.format}"


def _activity_id(body: Mapping[str, Any] | None) -> str | None:
    """The activity id in an upload answer: ``id``, else the first of ``activities``."""
    if not body:
        return None
    if isinstance(body.get("id"), str | int):
        return str(body["id"])
    for activity in body.get("activities") or []:
        if isinstance(activity, dict) and isinstance(activity.get("id"), str | int):
            return str(activity["id"])
    return None


class IntervalsDestination:
    """One intervals.icu athlete as a destination (implements ``DestinationKindHandler``)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: IntervalsConfig,
        secrets: Mapping[str, Any],
        *,
        api_url: str = DEFAULT_API_URL,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self.config = config
        self._api = f"{api_url.rstrip('/')}/api/v1/athlete/{config.athlete_id}"
        self._clock = clock
        self._sleep = sleep  # unused today; kept for the common constructor shape
        api_key, token = secrets.get("api_key"), secrets.get("access_token")
        self._auth: str | None = None
        if isinstance(api_key, str) and api_key.strip():
            self._auth = basic_auth_header(api_key.strip())
        elif isinstance(token, str) and token.strip():
            self._auth = f"Bearer {token.strip()}"
        self._redactor = Redactor([api_key, token, self._auth])

    async def deliver(self, request: DeliveryRequest) -> Delivered:
        file = request.file
        if file.format not in FORMATS:
            raise PermanentFailure(
                f"intervals.icu takes FIT, TCX or GPX files, not {file.format!r}; "
                "change the destination's formats"
            )
        external_id = external_id_for(request)
        if request.attempt > 1:
            existing = await self._find(request, external_id)
            if existing is not None:
                log.info("intervals.upload.already_there", activity=existing)
                return Delivered(external_id=existing, response_excerpt="already uploaded")
        name, description = activity_text(request.workout)
        response = await self._send(
            "POST",
            "/activities",
            what="the upload",
            params={"name": name, "description": description, "external_id": external_id},
            files={"file": (file.filename, file.data, file.content_type)},
            timeout=UPLOAD_TIMEOUT_S,
        )
        body = json_object(response)
        if response.status_code == 200:
            # The file is there already (see the module docstring): delivered, never retried.
            existing = _activity_id(body) or await self._find(request, external_id)
            log.info("intervals.upload.duplicate", activity=existing)
            return Delivered(
                status_code=200,
                external_id=existing,
                response_excerpt=self._redactor.text(
                    f"intervals.icu has this file already, as activity {existing or '(unnamed)'}"
                ),
            )
        if response.is_success:
            activity = _activity_id(body)
            if activity is None:
                raise DeliveryError(
                    "intervals.icu accepted the upload but named no activity",
                    remote_status=response.status_code,
                    response_excerpt=self._redactor.excerpt(response),
                )
            return Delivered(
                status_code=response.status_code,
                external_id=activity,
                response_excerpt=self._redactor.excerpt(response),
            )
        raise self._error("the upload", response)

    async def ping(self) -> Delivered:
        """Check the credentials with ``GET /api/v1/athlete/{id}``."""
        response = await self._send("GET", "", what="the athlete check")
        body = json_object(response)
        if not response.is_success or body is None:
            raise self._error("the athlete check", response)
        athlete = body.get("id")
        return Delivered(
            status_code=response.status_code,
            external_id=str(athlete) if athlete is not None else None,
            response_excerpt=f"authorized as intervals.icu athlete {athlete}",
        )

    async def _find(self, request: DeliveryRequest, external_id: str) -> str | None:
        """The id of our earlier upload of this workout, looked up by ``external_id`` in the
        athlete's activities of the workout's day (a day either side for time zones)."""
        day = request.workout.start.date()
        response = await self._send(
            "GET",
            "/activities",
            what="the activity lookup",
            params={
                "oldest": (day - timedelta(days=1)).isoformat(),
                "newest": (day + timedelta(days=1)).isoformat(),
            },
        )
        if not response.is_success:
            raise self._error("the activity lookup", response)
        try:
            activities = response.json()
        except ValueError:
            return None
        for activity in activities if isinstance(activities, list) else []:
            if isinstance(activity, dict) and activity.get("external_id") == external_id:
                found = activity.get("id")
                return str(found) if found is not None else None
        return None

    async def _send(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        if self._auth is None:
            raise NeedsReauthorization(
                "the intervals.icu destination has neither api_key nor access_token; "
                "add an API key from intervals.icu/settings"
            )
        return await call_api(
            self._http,
            SERVICE,
            what,
            method,
            f"{self._api}{path}",
            headers={"Authorization": self._auth, "Accept": "application/json"},
            **kwargs,
        )

    def _error(self, what: str, response: httpx.Response) -> DeliveryError:
        return status_error(
            SERVICE,
            what,
            response,
            now=self._clock(),
            redactor=self._redactor,
            detail=_error_detail(response),
        )


def _error_detail(response: httpx.Response) -> str | None:
    """The ``error`` of an error body: an object, or the first of an array of them."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, list):
        body = next((item for item in body if isinstance(item, dict)), None)
    if not isinstance(body, dict):
        return None
    return str(body.get("error") or body.get("message") or "") or None


# --- the kind's entry in the registry -----------------------------------------------------------

# Credentials travel in HTTP headers: visible ASCII only.
_TOKEN = Field(default=None, min_length=1, max_length=8192, pattern=TOKEN_PATTERN)


class IntervalsSecrets(BaseModel):
    """The secrets a user sets: an API key, or an OAuth access token."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    api_key: str | None = _TOKEN
    access_token: str | None = _TOKEN

    @model_validator(mode="after")
    def _one(self) -> IntervalsSecrets:
        if (self.api_key is None) == (self.access_token is None):
            raise ValueError("give an api_key or an access_token")
        return self


def _handler(runtime: Runtime, destination: Destination) -> IntervalsDestination:
    return IntervalsDestination(
        runtime.http,
        stored_config(IntervalsConfig, destination),
        decrypted_secrets(runtime, destination),
        api_url=runtime.settings.intervals_api_url,
        clock=runtime.clock,
        sleep=runtime.sleep,
    )


KIND = "intervals"
SPEC = KindSpec(
    kind=KIND,
    label="intervals.icu",
    config_model=IntervalsConfig,
    factory=_handler,
    secrets_model=IntervalsSecrets,
    config_doc="`athlete_id`",
    secrets_doc="`api_key` or `access_token`",
    form_fields=(
        FormField(
            "athlete_id", "Athlete id", placeholder="0: the key's own athlete", blank_keeps=True
        ),
        FormField(
            "api_key",
            "API key",
            input="password",
            secret=True,
            required=True,
            help="From intervals.icu: Settings, Developer Settings (with the Athlete ID).",
        ),
    ),
)
