"""A fake of Strava's OAuth and upload API, served by Starlette on the documented paths.

* ``POST /oauth/token``: ``authorization_code`` and ``refresh_token`` grants (checks the client
  id and secret, rotates refresh tokens: the old one stops working).
* ``POST /api/v3/uploads`` (multipart; records every field and the file),
  ``GET /api/v3/uploads/{id}`` (``"Your activity is still being processed."`` for
  ``processing_polls`` polls, then the configured outcome), ``GET /api/v3/athlete``.
* Every API answer carries ``X-RateLimit-Limit``/``-Usage`` (and ``X-ReadRateLimit-*``); usage
  counts like Strava's (uploads only against the overall budget) and a used-up window answers
  429. ``fault()`` queues answers (401, 429, 5xx...) served before anything else.

Error bodies have Strava's shape: ``{"message": ..., "errors": [{resource, field, code}]}``.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CLIENT_ID = "12345"
CLIENT_SECRET = "fake-strava-client-secret-7f3a9c"
ATHLETE = {"id": 4242, "username": "alex_rides", "firstname": "Alex", "lastname": "Rider"}
TTL_S = 21600
PROCESSING = "Your activity is still being processed."
READY = "Your activity is ready."
ERRORED = "There was an error processing your activity."
DELETED = "The created activity has been deleted."


def strava_error(message: str, resource: str, field_name: str, code: str) -> dict[str, Any]:
    return {
        "message": message,
        "errors": [{"resource": resource, "field": field_name, "code": code}],
    }


@dataclass
class Fault:
    method: str
    path: str  # served when the request path contains this
    status: int
    body: Any
    headers: dict[str, str]
    times: int


@dataclass
class Upload:
    id: int
    fields: dict[str, str]
    filename: str
    data: bytes
    polls: int = 0


@dataclass
class FakeStrava:
    """State and knobs of the fake."""

    now: Callable[[], float] = time.time
    rotate_refresh_tokens: bool = True
    reject_api_tokens: bool = False  # every API call answers 401 (access revoked)
    limits: tuple[int, int] = (200, 2000)
    usage: list[int] = field(default_factory=lambda: [0, 0])
    read_limits: tuple[int, int] = (100, 1000)
    read_usage: list[int] = field(default_factory=lambda: [0, 0])
    processing_polls: int = 1
    outcome: str = "activity"  # activity | duplicate | duplicate_link | error | deleted
    immediate_error: str | None = None  # an error already in the POST /uploads answer
    existing_activity_id: int = 9_000_001
    error_message: str = "Improperly formatted data: time is missing on some trackpoints."
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    codes: set[str] = field(default_factory=set)
    uploads: dict[int, Upload] = field(default_factory=dict)
    next_upload_id: int = 5_000_001
    next_activity_id: int = 12_000_001
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    bearer_tokens: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what the fake found wrong in requests

    # --- knobs ----------------------------------------------------------------------------------

    def issue_code(self) -> str:
        code = secrets.token_hex(20)
        self.codes.add(code)
        return code

    def seed_tokens(self, *, expires_in: int = TTL_S) -> dict[str, Any]:
        """Valid tokens as the destination's secrets."""
        tokens = self._issue(expires_in)
        return {
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_at": tokens["expires_at"],
            "athlete_id": ATHLETE["id"],
        }

    def revoke_access_tokens(self) -> None:
        self.access_tokens.clear()

    def fault(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        self.faults.append(Fault(method, path, status, body, headers or {}, times))

    @property
    def upload_list(self) -> list[Upload]:
        return list(self.uploads.values())

    # --- app ------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/oauth/token", self.token, methods=["POST"]),
                Route("/api/v3/athlete", self.athlete, methods=["GET"]),
                Route("/api/v3/uploads", self.create_upload, methods=["POST"]),
                Route("/api/v3/uploads/{upload_id:int}", self.get_upload, methods=["GET"]),
            ]
        )

    def _issue(self, expires_in: int = TTL_S) -> dict[str, Any]:
        access, refresh = secrets.token_hex(20), secrets.token_hex(20)
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {
            "token_type": "Bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": int(self.now()) + expires_in,
            "expires_in": expires_in,
        }

    async def token(self, request: Request) -> Response:
        async with request.form() as data:
            form = {k: str(v) for k, v in data.items()}
        self.token_requests.append(form)
        self.calls[f"token:{form.get('grant_type')}"] += 1
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse(
                strava_error("Bad Request", "Application", "client_secret", "invalid"), 400
            )
        grant = form.get("grant_type")
        if grant == "authorization_code":
            if form.get("code") not in self.codes:
                return JSONResponse(
                    strava_error("Bad Request", "AuthorizationCode", "code", "invalid"), 400
                )
            self.codes.discard(form["code"])
            return JSONResponse({**self._issue(), "athlete": ATHLETE})
        if grant == "refresh_token":
            old = form.get("refresh_token", "")
            if old not in self.refresh_tokens:
                return JSONResponse(
                    strava_error("Bad Request", "RefreshToken", "refresh_token", "invalid"), 400
                )
            tokens = self._issue()
            if self.rotate_refresh_tokens:
                self.refresh_tokens.discard(old)
            else:
                self.refresh_tokens.discard(tokens["refresh_token"])
                tokens["refresh_token"] = old
            return JSONResponse(tokens)
        return JSONResponse(strava_error("Bad Request", "Token", "grant_type", "invalid"), 400)

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": f"{self.limits[0]},{self.limits[1]}",
            "X-RateLimit-Usage": f"{self.usage[0]},{self.usage[1]}",
            "X-ReadRateLimit-Limit": f"{self.read_limits[0]},{self.read_limits[1]}",
            "X-ReadRateLimit-Usage": f"{self.read_usage[0]},{self.read_usage[1]}",
        }

    def _gate(self, request: Request, *, upload: bool) -> Response | None:
        """Faults, rate limits and the bearer token, in Strava's order; None to go on."""
        self.calls[f"{request.method} {request.url.path}"] += 1
        over = any(u >= lim for u, lim in zip(self.usage, self.limits, strict=True))
        read_over = not upload and any(
            u >= lim for u, lim in zip(self.read_usage, self.read_limits, strict=True)
        )
        # Requests over the limit still count toward it, like Strava's.
        self.usage[0] += 1
        self.usage[1] += 1
        if not upload:
            self.read_usage[0] += 1
            self.read_usage[1] += 1
        headers = self._rate_headers()
        for fault in self.faults:
            if fault.method == request.method and fault.path in request.url.path:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return JSONResponse(fault.body, fault.status, headers={**headers, **fault.headers})
        if over or read_over:
            body = {"message": "Rate Limit Exceeded", "errors": [{"code": "exceeded"}]}
            return JSONResponse(body, 429, headers=headers)
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        self.bearer_tokens.append(token)
        if (
            self.reject_api_tokens
            or not auth.startswith("Bearer ")
            or (token not in self.access_tokens)
        ):
            body = strava_error("Authorization Error", "Athlete", "access_token", "invalid")
            return JSONResponse(body, 401, headers=headers)
        return None

    def _json(self, body: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status, headers=self._rate_headers())

    async def athlete(self, request: Request) -> Response:
        return self._gate(request, upload=False) or self._json(ATHLETE)

    async def create_upload(self, request: Request) -> Response:
        refused = self._gate(request, upload=True)
        if refused is not None:
            return refused
        async with request.form() as form:
            file = form.get("file")
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            if not isinstance(file, UploadFile):
                body = strava_error("Bad Request", "Upload", "file", "empty")
                return self._json(body, 400)
            upload = Upload(self.next_upload_id, fields, file.filename or "", await file.read())
        self.next_upload_id += 1
        self.uploads[upload.id] = upload
        if fields.get("data_type") not in ("fit", "fit.gz", "tcx", "tcx.gz", "gpx", "gpx.gz"):
            self.problems.append(f"bad data_type {fields.get('data_type')!r}")
        answer = self._describe(upload, status=PROCESSING)
        if self.immediate_error:
            answer.update(error=self.immediate_error, status=ERRORED)
        return self._json(answer, 201)

    async def get_upload(self, request: Request) -> Response:
        refused = self._gate(request, upload=False)
        if refused is not None:
            return refused
        upload = self.uploads.get(request.path_params["upload_id"])
        if upload is None:
            return self._json(strava_error("Record Not Found", "Upload", "id", "not found"), 404)
        upload.polls += 1
        if upload.polls <= self.processing_polls:
            return self._json(self._describe(upload, status=PROCESSING))
        existing = self.existing_activity_id
        if self.outcome == "activity":
            activity = self.next_activity_id + upload.id
            return self._json(self._describe(upload, status=READY, activity_id=activity))
        if self.outcome == "duplicate":
            error = f"{upload.filename} duplicate of activity {existing}"
        elif self.outcome == "duplicate_link":
            error = (
                f"{upload.filename} duplicate of <a href='/activities/{existing}' "
                "target='_blank'>Morning Ride</a>"
            )
        elif self.outcome == "deleted":
            return self._json(self._describe(upload, status=DELETED))
        else:
            error = self.error_message
        return self._json(self._describe(upload, status=ERRORED, error=error))

    @staticmethod
    def _describe(
        upload: Upload, *, status: str, activity_id: int | None = None, error: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": upload.id,
            "id_str": str(upload.id),
            "external_id": upload.fields.get("external_id"),
            "error": error,
            "status": status,
            "activity_id": activity_id,
        }
