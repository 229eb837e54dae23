"""A fake of Strava's OAuth and upload API, served by Starlette on the documented paths.

Behaviour follows Strava's docs and what working clients met; each fact's source is given
where the fake implements it.

* API applications (``apps``): each has a client id, a secret and an athlete capacity. A new
  application is in "Single Player Mode" and connects only one athlete (its owner) until Strava
  reviews it; ``add_app`` makes more (a rider's own application).
* ``GET /oauth/authorize``: Strava's authorization page, for the athlete ``signed_in``: redirects
  to ``redirect_uri`` with ``code``, ``scope`` (what was ticked: ``granted_scope``) and
  ``state``; or Strava's own 403 page when the application is at its athlete capacity.
* ``POST /oauth/token``: ``authorization_code`` and ``refresh_token`` grants (checks the client
  id and secret against the application the code or token belongs to, rotates refresh tokens:
  the old one stops working).
* ``POST /oauth/deauthorize``: revokes every token of the athlete for the application and frees
  its place in the application's capacity.
* ``POST /api/v3/uploads`` (multipart; records every field and the file),
  ``GET /api/v3/uploads/{id}`` (``"Your activity is still being processed."`` for
  ``processing_polls`` polls, then the configured outcome), ``GET /api/v3/athlete``.
* Every API answer carries ``X-RateLimit-Limit``/``-Usage`` (and ``X-ReadRateLimit-*``); usage
  counts like Strava's (uploads only against the overall budget) and a used-up window answers
  429. ``fault()`` queues answers (401, 429, 5xx...) served before anything else, on the API
  and on ``/oauth/token`` and ``/oauth/deauthorize``.

Error bodies have Strava's shape: ``{"message": ..., "errors": [{resource, field, code}]}``.
A call the token's scopes do not cover (an upload without ``activity:write``) is a **401**
naming the missing permission, not a 403.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "12345"
CLIENT_SECRET = "fake-strava-client-secret-7f3a9c"
ATHLETE = {"id": 4242, "username": "alex_rides", "firstname": "Alex", "lastname": "Rider"}
SECOND_ATHLETE = {"id": 5353, "username": "sam_runs", "firstname": "Sam", "lastname": "Rider"}
FULL_SCOPE = "read,activity:write"
# Strava's page for an application at its athlete capacity, as athletes report it
# (github.com/jat255/strava-to-fittrackee/issues/22, github.com/martin-ueding/
# geo-activity-playground/issues/220): shown on strava.com after "Authorize", so the app's
# callback is never called. New applications connect one athlete until Strava reviews them
# (github.com/craibo/ha_strava/issues/288; Strava's reply raising a capacity:
# github.com/TrackMyIndoorWorkout/TrackMyIndoorWorkout/issues/511).
ATHLETE_LIMIT_PAGE = (
    "<h1>Error 403: Limit of connected athletes exceeded</h1><p>This app has exceeded the limit "
    "of connected athletes. If you are a developer of this application, please contact Strava "
    "developer support for how to request a quota increase.</p>"
)
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
class App:
    """A Strava API application: its secret, athlete capacity and connected athletes."""

    client_id: str
    secret: str
    capacity: int = 1  # "Single Player Mode" until Strava reviews the application
    connected: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Grant:
    """What a code or token stands for: which application, which athlete, which scopes."""

    client_id: str
    athlete: dict[str, Any]
    scope: str

    def allows(self, scope: str) -> bool:
        return scope in self.scope.split(",")


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
    apps: dict[str, App] = field(default_factory=lambda: {CLIENT_ID: App(CLIENT_ID, CLIENT_SECRET)})
    signed_in: dict[str, Any] = field(default_factory=lambda: dict(ATHLETE))
    # What the athlete leaves ticked on the authorize page; None: everything requested.
    granted_scope: str | None = None
    access_tokens: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    codes: dict[str, Grant] = field(default_factory=dict)
    deauthorized: list[int] = field(default_factory=list)  # athlete ids, in order
    uploads: dict[int, Upload] = field(default_factory=dict)
    next_upload_id: int = 5_000_001
    next_activity_id: int = 12_000_001
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    bearer_tokens: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what the fake found wrong in requests

    # --- knobs ----------------------------------------------------------------------------------

    def add_app(self, client_id: str, secret: str, *, capacity: int = 1) -> App:
        """Another API application (a rider's own)."""
        app = self.apps[client_id] = App(client_id, secret, capacity)
        return app

    def issue_code(
        self,
        *,
        client_id: str = CLIENT_ID,
        athlete: dict[str, Any] | None = None,
        scope: str = FULL_SCOPE,
    ) -> str:
        """A code as if the athlete had approved (skipping the authorize page and its
        capacity check: ``authorize`` does both)."""
        code = secrets.token_hex(20)
        self.codes[code] = Grant(client_id, dict(athlete or ATHLETE), scope)
        return code

    def seed_tokens(
        self,
        *,
        expires_in: int = TTL_S,
        scope: str = FULL_SCOPE,
        client_id: str = CLIENT_ID,
        athlete: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Valid tokens as the destination's secrets."""
        grant = Grant(client_id, dict(athlete or ATHLETE), scope)
        self.apps[client_id].connected.add(grant.athlete["id"])
        tokens = self._issue(grant, expires_in)
        return {
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_at": tokens["expires_at"],
            "athlete_id": grant.athlete["id"],
            "scope": scope,
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
                Route("/oauth/authorize", self.authorize, methods=["GET"]),
                Route("/oauth/token", self.token, methods=["POST"]),
                Route("/oauth/deauthorize", self.deauthorize, methods=["POST"]),
                Route("/api/v3/athlete", self.athlete, methods=["GET"]),
                Route("/api/v3/uploads", self.create_upload, methods=["POST"]),
                Route("/api/v3/uploads/{upload_id:int}", self.get_upload, methods=["GET"]),
            ]
        )

    def _issue(self, grant: Grant, expires_in: int = TTL_S) -> dict[str, Any]:
        access, refresh = secrets.token_hex(20), secrets.token_hex(20)
        self.access_tokens[access] = grant
        self.refresh_tokens[refresh] = grant
        return {
            "token_type": "Bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": int(self.now()) + expires_in,
            "expires_in": expires_in,
        }

    async def authorize(self, request: Request) -> Response:
        """Strava's authorization page, approved at once by ``signed_in`` with the scopes
        asked for (or ``granted_scope``) ticked (developers.strava.com/docs/authentication:
        the redirect carries ``code``, ``scope`` as accepted, and ``state``)."""
        query = request.query_params
        self.calls["GET /oauth/authorize"] += 1
        app = self.apps.get(query.get("client_id", ""))
        if app is None or query.get("response_type") != "code" or not query.get("redirect_uri"):
            body = strava_error("Bad Request", "Application", "client_id", "invalid")
            return JSONResponse(body, 400)
        athlete = self.signed_in
        if athlete["id"] not in app.connected and len(app.connected) >= app.capacity:
            return HTMLResponse(ATHLETE_LIMIT_PAGE, 403)
        code = secrets.token_hex(20)
        scope = self.granted_scope if self.granted_scope is not None else query.get("scope", "")
        self.codes[code] = Grant(app.client_id, dict(athlete), scope)
        back = {"state": query.get("state", ""), "code": code, "scope": scope}
        return RedirectResponse(f"{query['redirect_uri']}?{urlencode(back)}", 302)

    async def token(self, request: Request) -> Response:
        async with request.form() as data:
            form = {k: str(v) for k, v in data.items()}
        self.token_requests.append(form)
        self.calls[f"token:{form.get('grant_type')}"] += 1
        faulted = self._fault(request)
        if faulted is not None:
            return faulted
        app = self.apps.get(form.get("client_id", ""))
        if app is None or form.get("client_secret") != app.secret:
            return JSONResponse(
                strava_error("Bad Request", "Application", "client_secret", "invalid"), 400
            )
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self.codes.get(form.get("code", ""))
            if grant is None or grant.client_id != app.client_id:
                return JSONResponse(
                    strava_error("Bad Request", "AuthorizationCode", "code", "invalid"), 400
                )
            del self.codes[form["code"]]
            app.connected.add(grant.athlete["id"])
            # No scope here: Strava gives it in the redirect to the callback only.
            return JSONResponse({**self._issue(grant), "athlete": grant.athlete})
        if grant_type == "refresh_token":
            old = form.get("refresh_token", "")
            grant = self.refresh_tokens.get(old)
            if grant is None or grant.client_id != app.client_id:
                return JSONResponse(
                    strava_error("Bad Request", "RefreshToken", "refresh_token", "invalid"), 400
                )
            tokens = self._issue(grant)
            if self.rotate_refresh_tokens:
                del self.refresh_tokens[old]
            else:
                del self.refresh_tokens[tokens["refresh_token"]]
                tokens["refresh_token"] = old
            return JSONResponse(tokens)
        return JSONResponse(strava_error("Bad Request", "Token", "grant_type", "invalid"), 400)

    async def deauthorize(self, request: Request) -> Response:
        """``POST /oauth/deauthorize`` with ``access_token``: "invalidate all refresh tokens and
        access tokens that the application has for the athlete", and the application leaves the
        athlete's settings (developers.strava.com/docs/authentication, "Deauthorization";
        strava.github.io/api/v3/oauth/#deauthorize). Answers with the token that was revoked;
        a token already invalid gets Strava's 401 (javastrava's TokenService: "All requests
        made using invalidated tokens will receive a 401 Unauthorised response")."""
        async with request.form() as data:
            form = {k: str(v) for k, v in data.items()}
        self.calls["POST /oauth/deauthorize"] += 1
        faulted = self._fault(request)
        if faulted is not None:
            return faulted
        token = form.get("access_token") or request.headers.get("authorization", "").removeprefix(
            "Bearer "
        )
        grant = self.access_tokens.get(token)
        if grant is None:
            body = strava_error("Authorization Error", "Athlete", "access_token", "invalid")
            return JSONResponse(body, 401)
        athlete_id = grant.athlete["id"]
        for tokens in (self.access_tokens, self.refresh_tokens):
            for key in [k for k, g in tokens.items() if g.athlete["id"] == athlete_id]:
                if tokens[key].client_id == grant.client_id:
                    del tokens[key]
        self.apps[grant.client_id].connected.discard(athlete_id)
        self.deauthorized.append(athlete_id)
        return JSONResponse({"access_token": token})

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": f"{self.limits[0]},{self.limits[1]}",
            "X-RateLimit-Usage": f"{self.usage[0]},{self.usage[1]}",
            "X-ReadRateLimit-Limit": f"{self.read_limits[0]},{self.read_limits[1]}",
            "X-ReadRateLimit-Usage": f"{self.read_usage[0]},{self.read_usage[1]}",
        }

    def _fault(self, request: Request, headers: dict[str, str] | None = None) -> Response | None:
        """The first queued fault for this request, if any (used up ``times`` times)."""
        for fault in self.faults:
            if fault.method == request.method and fault.path in request.url.path:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return JSONResponse(
                    fault.body, fault.status, headers={**(headers or {}), **fault.headers}
                )
        return None

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
        faulted = self._fault(request, headers)
        if faulted is not None:
            return faulted
        if over or read_over:
            body = {"message": "Rate Limit Exceeded", "errors": [{"code": "exceeded"}]}
            return JSONResponse(body, 429, headers=headers)
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        self.bearer_tokens.append(token)
        grant = self.access_tokens.get(token)
        if self.reject_api_tokens or not auth.startswith("Bearer ") or grant is None:
            body = strava_error("Authorization Error", "Athlete", "access_token", "invalid")
            return JSONResponse(body, 401, headers=headers)
        if upload and not grant.allows("activity:write"):
            # A 401 naming the permission, not a 403 (github.com/danshannon/javastravav3api/
            # issues/140: an upload without write scope; the body's shape as in
            # github.com/googledatastudio/community-connectors/issues/291).
            body = strava_error(
                "Authorization Error", "AccessToken", "activity:write_permission", "missing"
            )
            return JSONResponse(body, 401, headers=headers)
        return None

    def _json(self, body: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status, headers=self._rate_headers())

    async def athlete(self, request: Request) -> Response:
        refused = self._gate(request, upload=False)
        if refused is not None:
            return refused
        return self._json(self.access_tokens[self.bearer_tokens[-1]].athlete)

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
