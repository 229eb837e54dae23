"""The Runalyze destination kind: upload a workout file with a personal API token.

Runalyze's Personal API (runalyze.com/help/article/personal-api; the endpoint list at
runalyze.com/doc/personal needs a login, so the facts below come from Runalyze's own example
repository ``Runalyze/personal-api``, the OpenAPI document Runalyze serves at
``/api/docs?format=json``, and working clients):

* Base URL ``https://runalyze.com/api/v1`` (``PELOSYNC_RUNALYZE_API_URL``). Every request
  carries the token in a header named ``token`` (not ``Authorization``); the token is made at
  runalyze.com/settings/personal-api.
* ``POST /activities/uploads``, ``multipart/form-data``: ``file`` (required) and optionally
  ``title`` and ``note``. FIT, TCX, GPX (and ttbin, fitlog) are taken. The answer is 201 with
  a ``queue_id``: the file is imported in the background, so the activity does not exist yet.
* ``GET /activities/uploads/{queue_id}``: ``{queue_id, activity_id, status, message}``;
  ``activity_id`` is set once imported (status "successfully imported").
* ``GET /ping`` answers ``["pong"]`` to a valid token: the ``test`` action.

What is not documented, and what pelosync does about it:

* A refused token: Runalyze's example script only looks for "No valid token" in the body.
  401 and 403, and any other 4xx whose body says "No valid token", are
  :class:`NeedsReauthorization`.
* Duplicates: how Runalyze answers one is not published (its importer is expected to notice
  an activity it already has). An upload answered 409, or a 4xx saying "duplicate" / "already
  exists", and an import whose status or message says so, are delivered (with the existing
  activity's id when given).
* Rate limits: no numbers are published; a 429 is :class:`Postponed` for its ``Retry-After``
  (5 minutes without one).
* Runalyze has no external id to look an upload up by, so a retry uploads again and relies on
  the duplicate detection above.

After the upload the import is polled for up to ``import_wait_s`` (2 s, then every 5 s): an
``activity_id`` is delivered as that id; a status naming a failure is :class:`PermanentFailure`;
still queued when the time is up, or a status Runalyze fails to give, is delivered as
``upload:<queue_id>`` (Runalyze has the file and finishes on its own; failing the attempt would
make the engine upload it again, for a duplicate at best).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

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
from service.destinations.kinds.spec import FormField, KindSpec, decrypted_secrets, stored_config

if TYPE_CHECKING:
    from service.destinations.models import Destination
    from service.runtime import Runtime

log = structlog.get_logger(__name__)

SERVICE = "Runalyze"
DEFAULT_API_URL = "https://runalyze.com/api/v1"
#: Where a user sees an imported activity.
ACTIVITY_URL = "https://runalyze.com/activity/{id}"
#: What Runalyze takes, best first (FIT keeps power, cadence and laps; TCX is the fallback).
FORMATS = ("fit", "tcx")
UPLOAD_TIMEOUT_S = 120.0
FIRST_POLL_S = 2.0
POLL_EVERY_S = 5.0
_BAD_TOKEN = "no valid token"
_DUPLICATE = ("duplicate", "already exists", "already been imported", "already imported")
_FAILED = ("fail", "error", "invalid", "unsupported", "not supported")


class RunalyzeConfig(BaseModel):
    """A Runalyze destination's settings (the token is a secret, see :class:`RunalyzeSecrets`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    import_wait_s: float = Field(
        default=30.0,
        ge=0,
        le=120,
        description="How long to wait for Runalyze's background import to name the new "
        "activity (0: do not wait; the upload is delivered as queued).",
    )


class RunalyzeSecrets(BaseModel):
    """A Runalyze destination's secrets: the personal API token (write-only in the API)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token: str = Field(
        description="The personal API token from runalyze.com/settings/personal-api."
    )

    @field_validator("token")
    @classmethod
    def _plausible(cls, value: str) -> str:
        token = value.strip()
        # It travels as an HTTP header value: printable ASCII without spaces.
        if not 8 <= len(token) <= 256 or not all(33 <= ord(c) <= 126 for c in token):
            raise ValueError(
                "must be the personal API token from runalyze.com/settings/personal-api "
                "(8 to 256 printable characters, no spaces)"
            )
        return token


def activity_url(activity_id: str) -> str:
    return ACTIVITY_URL.format(id=activity_id)


def _text_of(body: Mapping[str, Any] | None, *keys: str) -> str:
    if not body:
        return ""
    return " ".join(str(body[k]) for k in keys if isinstance(body.get(k), str | int)).lower()


def _id(value: object) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


class RunalyzeDestination:
    """One Runalyze account as a destination (implements ``DestinationKindHandler``)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: RunalyzeConfig,
        secrets: Mapping[str, Any],
        *,
        api_url: str = DEFAULT_API_URL,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self.config = config
        self._api = api_url.rstrip("/")
        self._clock = clock
        self._sleep = sleep
        token = secrets.get("token")
        self._token = token.strip() if isinstance(token, str) and token.strip() else None
        self._redactor = Redactor([self._token])

    @property
    def api_url(self) -> str:
        """The Personal API's base URL this destination talks to."""
        return self._api

    async def deliver(self, request: DeliveryRequest) -> Delivered:
        file = request.file
        if file.format not in FORMATS:
            raise PermanentFailure(
                f"Runalyze takes FIT or TCX files here, not {file.format!r}; "
                "change the destination's formats"
            )
        title, note = activity_text(request.workout)
        response = await self._send(
            "POST",
            "/activities/uploads",
            what="the upload",
            data={"title": title, "note": note},
            files={"file": (file.filename, file.data, file.content_type)},
            timeout=UPLOAD_TIMEOUT_S,
        )
        body = json_object(response)
        if not response.is_success:
            if self._is_duplicate(response):
                existing = _id((body or {}).get("activity_id"))
                log.info("runalyze.upload.duplicate", activity=existing)
                return self._delivered(response, existing, "already on Runalyze")
            raise self._error("the upload", response, body)
        queue_id = _id((body or {}).get("queue_id")) or _id((body or {}).get("id"))
        if queue_id is None:
            # Accepted, but nothing to follow: the file is Runalyze's now; do not upload again.
            return self._delivered(response, None, "accepted by Runalyze")
        return await self._follow(queue_id, response)

    async def ping(self) -> Delivered:
        """Check the token with ``GET /ping`` (Runalyze answers ``["pong"]``)."""
        response = await self._send("GET", "/ping", what="the token check")
        if not response.is_success:
            raise self._error("the token check", response, json_object(response))
        return Delivered(
            status_code=response.status_code,
            response_excerpt="Runalyze accepted the personal API token",
        )

    async def _follow(self, queue_id: str, accepted: httpx.Response) -> Delivered:
        """Poll the background import until it names the activity or the wait is over."""
        waited, delay = 0.0, FIRST_POLL_S
        while waited + delay <= self.config.import_wait_s:
            await self._sleep(delay)
            waited += delay
            delay = POLL_EVERY_S
            # Runalyze has the file now: a status it fails to give changes nothing, and an
            # error here would make the engine upload the file again.
            try:
                response = await self._send(
                    "GET", f"/activities/uploads/{queue_id}", what="the import status"
                )
            except DeliveryError:
                break
            if not response.is_success:
                log.info("runalyze.status.unread", queue_id=queue_id, status=response.status_code)
                break
            body = json_object(response)
            done = self._outcome(queue_id, response, body)
            if done is not None:
                return done
        log.info("runalyze.upload.queued", queue_id=queue_id)
        return self._delivered(
            accepted, f"upload:{queue_id}", f"queued as Runalyze upload {queue_id}"
        )

    def _outcome(
        self, queue_id: str, response: httpx.Response, body: dict[str, Any] | None
    ) -> Delivered | None:
        """What an import status says: imported, a duplicate, failed, or None (still queued)."""
        activity = _id((body or {}).get("activity_id"))
        said = _text_of(body, "status", "message")
        if any(word in said for word in _DUPLICATE):
            return self._delivered(response, activity, "already on Runalyze")
        if activity is not None:
            return self._delivered(response, activity, f"imported as {activity_url(activity)}")
        if any(word in said for word in _FAILED):
            detail = str((body or {}).get("message") or (body or {}).get("status"))
            raise PermanentFailure(
                f"Runalyze could not import upload {queue_id}: {self._redactor.text(detail)}",
                remote_status=response.status_code,
                response_excerpt=self._redactor.excerpt(response),
            )
        return None

    def _delivered(self, response: httpx.Response, external_id: str | None, note: str) -> Delivered:
        answer = self._redactor.excerpt(response)
        return Delivered(
            status_code=response.status_code,
            external_id=external_id,
            response_excerpt=f"{note}: {answer}" if answer else note,
        )

    async def _send(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        if self._token is None:
            raise NeedsReauthorization(
                "the Runalyze destination has no token; "
                "add the personal API token from runalyze.com/settings/personal-api"
            )
        return await call_api(
            self._http,
            SERVICE,
            what,
            method,
            f"{self._api}{path}",
            headers={"token": self._token, "Accept": "application/json"},
            **kwargs,
        )

    @staticmethod
    def _is_duplicate(response: httpx.Response) -> bool:
        status = response.status_code
        if status == 409:
            return True
        if not 400 <= status < 500 or status in (401, 403, 429):
            return False
        said = response.text[:4096].lower()
        return _BAD_TOKEN not in said and any(word in said for word in _DUPLICATE)

    def _error(
        self, what: str, response: httpx.Response, body: dict[str, Any] | None
    ) -> DeliveryError:
        # Runalyze answers as API Platform does: {"title", "detail"} problems, or
        # {"violations": [{"propertyPath", "message"}]}, or a bare {"message"}.
        detail = None
        if body:
            violations = body.get("violations")
            if isinstance(violations, list) and violations:
                detail = "; ".join(
                    f"{v.get('propertyPath')}: {v.get('message')}"
                    for v in violations
                    if isinstance(v, dict)
                )
            detail = detail or str(body.get("detail") or body.get("message") or "") or None
        status = response.status_code
        said = response.text[:4096].lower()
        if status in (401, 403) or (400 <= status < 500 and status != 429 and _BAD_TOKEN in said):
            return NeedsReauthorization(
                f"{SERVICE} refused the personal API token for {what} "
                f"(HTTP {response.status_code}); make a new one at "
                "runalyze.com/settings/personal-api",
                remote_status=response.status_code,
                response_excerpt=self._redactor.excerpt(response),
            )
        return status_error(
            SERVICE, what, response, now=self._clock(), redactor=self._redactor, detail=detail
        )


# --- the kind's entry in the registry -----------------------------------------------------------


def _handler(runtime: Runtime, destination: Destination) -> RunalyzeDestination:
    return RunalyzeDestination(
        runtime.http,
        stored_config(RunalyzeConfig, destination),
        decrypted_secrets(runtime, destination),
        api_url=runtime.settings.runalyze_api_url,
        clock=runtime.clock,
        sleep=runtime.sleep,
    )


KIND = "runalyze"
SPEC = KindSpec(
    kind=KIND,
    label="Runalyze",
    config_model=RunalyzeConfig,
    factory=_handler,
    formats=FORMATS,
    secrets_model=RunalyzeSecrets,
    config_doc="`import_wait_s` (seconds to wait for Runalyze's import, default 30)",
    secrets_doc="`token` (the personal API token)",
    form_fields=(
        FormField(
            "token",
            "Personal API token",
            input="password",
            secret=True,
            required=True,
            help="From Runalyze: Settings, Personal API (runalyze.com/settings/personal-api).",
        ),
        FormField(
            "import_wait_s",
            "Wait for Runalyze's import, seconds",
            input="number",
            minimum=0,
            placeholder="30",
            error_label="import wait",
        ),
    ),
)
