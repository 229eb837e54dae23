"""A fake of the Garmin Connect pieces the Garmin kind uses, served by Starlette.

What it does, and where each behaviour comes from:

* ``POST /di-oauth2-service/oauth/token``, Garmin's DI token endpoint, two grants, both with HTTP
  Basic ``client_id:`` (empty password) and the form's ``client_id`` the same
  (python-garminconnect ``garminconnect/client.py`` ``_exchange_service_ticket``,
  ``_refresh_di_token``; peloton-to-garmin ``src/Garmin/ApiClient.cs``):

  - ``grant_type=https://connectapi.garmin.com/di-oauth2-service/oauth/grant/service_ticket``
    with ``service_ticket`` and ``service_url``. A ticket works once, for about a minute
    (peloton-to-garmin ``garmin-service-ticket.md``: "The service ticket will expire, possibly
    within 1 minute"), and only with the ``service_url`` it was issued for (python-garminconnect:
    "service_url must match the one used during SSO login"). Garmin retires DI client ids, which
    is why both tools try a list in turn: a client id not in ``active_client_ids`` is refused
    (401 ``invalid_client``, the status RFC 6749 gives a refused client; Garmin's own body for it
    was not observed).
  - ``grant_type=refresh_token``: a new refresh token every time, while the old one keeps
    working (a public TypeScript client that reuses one refresh token: "Garmin's DI auth issues a
    new refresh token on every use, but the old one stays valid"); so two replicas refreshing at
    once both succeed. ``revoke_on_refresh`` makes it strict. The answer carries ``expires_in``
    (about a day) and ``refresh_token_expires_in`` (peloton-to-garmin ``OAuth2Token``
    ``Refresh_Token_Expires_In``; "~30d" in ``GarminAuthenticationService.cs``). A refresh does
    not extend the sign-in: the ticket's service lets the user go about 30 days, after which
    "you will need to repeat this process" (``garmin-service-ticket.md``), so the refresh token's
    lifetime counts down from the sign-in. An expired or unknown one: 400 ``invalid_grant``.

  Every request's headers are kept (``token_requests``) for the tests to check that pelosync
  sends what Garmin Connect Mobile for Android sends.

* ``POST /upload-service/upload/{.fit|.tcx|.gpx}``: multipart ``file`` with a Bearer token;
  answers ``{"detailedImportResult": {uploadId, fileName, successes[], failures[]}}``: 201 with
  ``successes[].internalId`` (the new activity), 202 with neither while ``processing``
  (La0/garmin-uploader#37: a 202 with empty ``successes`` for a new activity still being
  processed). Garmin keeps one activity per start time: an upload starting when an activity
  already does (a watch's recording of the same ride, or the same file again) is answered 409
  with a failure naming the existing activity (``internalId``) and the message code 202,
  "Duplicate Activity." (peloton-to-garmin ``ApiClient.UploadActivity`` allows 409 and logs code
  202 as "Activity already uploaded"; yihong0618/running_page ``garmin_sync.py`` matches 409 and
  "Duplicate Activity."; drkostas/hevy2garmin#279: an upload sharing a watch copy's start time is
  reported as a duplicate of that activity). The start time is the FIT ``session.start_time``
  (else ``file_id.time_created``), TCX ``Activity/Id``, or GPX's first ``time``; a file whose start
  cannot be read is only a duplicate of the same bytes.
* ``GET /userprofile-service/socialProfile``.

Access tokens are unsigned JWT-shaped strings carrying ``exp`` and ``client_id`` claims.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from garmin_fit_sdk import Decoder, Stream
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CLIENT_ID = "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2"
CLIENT_IDS = (
    CLIENT_ID,
    "GARMIN_CONNECT_MOBILE_ANDROID_DI_2024Q4",
    "GARMIN_CONNECT_MOBILE_ANDROID_DI",
    "GARMIN_CONNECT_MOBILE_IOS_DI",
)
SERVICE_URL = "https://mobile.integration.garmin.com/gcm/android"
TICKET_GRANT = "https://connectapi.garmin.com/di-oauth2-service/oauth/grant/service_ticket"
TTL_S = 86400
REFRESH_TTL_S = 30 * 86400
TICKET_TTL_S = 60


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def make_jwt(claims: dict[str, Any]) -> str:
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.{secrets.token_hex(16)}"


def start_time(data: bytes, extension: str) -> datetime | None:
    """When an uploaded file's activity starts, as Garmin reads it; None if unreadable."""
    if extension == ".fit":
        messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
        if errors:
            return None
        for kind, name in (("session_mesgs", "start_time"), ("file_id_mesgs", "time_created")):
            for message in messages.get(kind) or []:
                if isinstance(message.get(name), datetime):
                    return message[name].astimezone(UTC).replace(microsecond=0)
        return None
    pattern = rb"<Id>([^<]+)</Id>" if extension == ".tcx" else rb"<time>([^<]+)</time>"
    found = re.search(pattern, data)
    if found is None:
        return None
    try:
        return datetime.fromisoformat(found.group(1).decode().replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class Fault:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Import:
    upload_id: int
    activity_id: int
    filename: str
    extension: str
    data: bytes
    headers: dict[str, str]
    start: datetime | None = None


@dataclass
class FakeGarmin:
    now: Callable[[], float] = time.time
    processing: bool = False  # answer 202 without an activity id
    reject_file: str | None = None  # answer 201 with this failure message
    reject_api_tokens: bool = False
    revoke_on_refresh: bool = False  # a used refresh token stops working
    active_client_ids: set[str] = field(default_factory=lambda: set(CLIENT_IDS))
    access_tokens: set[str] = field(default_factory=set)
    # refresh token -> (client id, when the sign-in's refresh lifetime ends)
    refresh_tokens: dict[str, tuple[str, int]] = field(default_factory=dict)
    # ticket -> (service url, when it was issued)
    tickets: dict[str, tuple[str, float]] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)
    next_upload_id: int = 300_000_001
    next_activity_id: int = 18_000_000_001
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    # (Authorization, form, lower-cased headers) of every token request
    token_requests: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)

    # --- what a test sets up -------------------------------------------------------------------

    def sign_in(self, *, service_url: str = SERVICE_URL) -> str:
        """A service ticket, as Garmin's sign-in page answers it (``serviceTicketId``)."""
        ticket = f"ST-{secrets.randbelow(10**7):07d}-{secrets.token_hex(10)}-sso"
        self.tickets[ticket] = (service_url, self.now())
        return ticket

    def issue(
        self,
        *,
        expires_in: int = TTL_S,
        client_id: str = CLIENT_ID,
        refresh_until: int | None = None,
    ) -> dict[str, Any]:
        """A DI token answer (a new sign-in unless ``refresh_until`` carries one on)."""
        now = int(self.now())
        until = refresh_until if refresh_until is not None else now + REFRESH_TTL_S
        access = make_jwt(
            {"client_id": client_id, "exp": now + expires_in, "scope": ["CONNECT_WRITE"]}
        )
        refresh = secrets.token_hex(24)
        self.access_tokens.add(access)
        self.refresh_tokens[refresh] = (client_id, until)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": expires_in,
            "refresh_token_expires_in": until - now,
            "scope": "CONNECT_WRITE",
        }

    def seed_tokens(self, *, expires_in: int = TTL_S) -> dict[str, Any]:
        """Secrets as a user would paste them (no expires_at: it is in the token)."""
        tokens = self.issue(expires_in=expires_in)
        return {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"]}

    def token_file(self, **overrides: Any) -> str:
        """``garmin_tokens.json`` as python-garminconnect's ``Client.dumps`` writes it."""
        tokens = self.issue()
        data = {
            "di_token": tokens["access_token"],
            "di_refresh_token": tokens["refresh_token"],
            "di_client_id": CLIENT_ID,
            **overrides,
        }
        return json.dumps(data)

    def record_on_watch(self, start: datetime) -> int:
        """An activity a watch recorded (and synced) starting at ``start``; its id."""
        activity_id = self.next_activity_id
        self.next_activity_id += 1
        self.imports.append(Import(0, activity_id, "watch.fit", ".fit", b"", {}, start))
        return activity_id

    def fault(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.faults.append(Fault(method, path, status, body, headers or {}))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/upload-service/upload/{extension}", self.upload, methods=["POST"]),
                Route("/di-oauth2-service/oauth/token", self.token, methods=["POST"]),
                Route("/userprofile-service/socialProfile", self.profile, methods=["GET"]),
            ]
        )

    # --- the endpoints -------------------------------------------------------------------------

    def _fault(self, request: Request) -> Response | None:
        for fault in self.faults:
            if fault.method == request.method and fault.path in request.url.path:
                self.faults.remove(fault)
                return JSONResponse(fault.body, fault.status, headers=fault.headers)
        return None

    def _gate(self, request: Request) -> Response | None:
        self.calls[f"{request.method} {request.url.path}"] += 1
        faulted = self._fault(request)
        if faulted is not None:
            return faulted
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.reject_api_tokens or token not in self.access_tokens:
            return JSONResponse({"message": "Token is not active"}, 401)
        return None

    async def token(self, request: Request) -> Response:
        async with request.form() as data:
            form = {k: str(v) for k, v in data.items()}
        auth = request.headers.get("authorization", "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.token_requests.append((auth, form, headers))
        self.calls["token"] += 1
        faulted = self._fault(request)
        if faulted is not None:
            return faulted
        client_id = form.get("client_id", "")
        basic = "Basic " + base64.b64encode(f"{client_id}:".encode()).decode()
        if auth != basic or client_id not in self.active_client_ids:
            return JSONResponse({"error": "invalid_client"}, 401)
        grant = form.get("grant_type")
        if grant == TICKET_GRANT:
            issued = self.tickets.pop(form.get("service_ticket", ""), None)
            if (
                issued is None
                or issued[0] != form.get("service_url")
                or self.now() - issued[1] > TICKET_TTL_S
            ):
                return JSONResponse({"error": "invalid_grant"}, 400)
            return JSONResponse(self.issue(client_id=client_id))
        if grant == "refresh_token":
            held = self.refresh_tokens.get(form.get("refresh_token", ""))
            if held is None or held[0] != client_id or held[1] <= self.now():
                return JSONResponse({"error": "invalid_grant"}, 400)
            if self.revoke_on_refresh:
                del self.refresh_tokens[form["refresh_token"]]
            return JSONResponse(self.issue(client_id=client_id, refresh_until=held[1]))
        return JSONResponse({"error": "unsupported_grant_type"}, 400)

    async def profile(self, request: Request) -> Response:
        refused = self._gate(request)
        return refused or JSONResponse({"displayName": "alex_rides", "profileId": 777})

    async def upload(self, request: Request) -> Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        extension = request.path_params["extension"]
        if extension not in (".fit", ".tcx", ".gpx"):
            return JSONResponse({"message": "unsupported"}, 415)
        async with request.form() as form:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                return JSONResponse({"message": "file is required"}, 400)
            data, filename = await file.read(), file.filename or ""
        upload_id = self.next_upload_id
        self.next_upload_id += 1
        result: dict[str, Any] = {
            "uploadId": upload_id,
            "fileName": filename,
            "fileSize": len(data),
            "successes": [],
            "failures": [],
        }
        start = start_time(data, extension)
        digest = hashlib.sha256(data).digest()
        for done in self.imports:
            same = (start is not None and done.start == start) or (
                hashlib.sha256(done.data).digest() == digest
            )
            if same:
                message = {"code": 202, "content": "Duplicate Activity."}
                result["failures"] = [
                    {"internalId": done.activity_id, "externalId": None, "messages": [message]}
                ]
                return JSONResponse({"detailedImportResult": result}, 409)
        if self.reject_file:
            message = {"code": 400, "content": self.reject_file}
            result["failures"] = [{"internalId": None, "externalId": None, "messages": [message]}]
            return JSONResponse({"detailedImportResult": result}, 201)
        activity_id = self.next_activity_id
        self.next_activity_id += 1
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.imports.append(
            Import(upload_id, activity_id, filename, extension, data, headers, start)
        )
        if self.processing:
            return JSONResponse({"detailedImportResult": result}, 202)
        result["successes"] = [{"internalId": activity_id, "externalId": None, "messages": None}]
        return JSONResponse({"detailedImportResult": result}, 201)
