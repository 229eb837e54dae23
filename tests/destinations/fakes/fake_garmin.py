"""A fake of the Garmin Connect pieces the Garmin kind uses, served by Starlette.

* ``POST /upload-service/upload/{.fit|.tcx|.gpx}``: multipart ``file`` with a Bearer token;
  answers ``{"detailedImportResult": {uploadId, fileName, successes[], failures[]}}``: 201 with
  ``successes[].internalId`` (the new activity), 202 with neither while ``processing``, 409 with
  a failure message code 202 "Duplicate Activity." naming the existing activity.
* ``POST /di-oauth2-service/oauth/token``: the DI refresh grant (HTTP Basic ``client_id:``),
  rotating refresh tokens.
* ``GET /userprofile-service/socialProfile``.

Access tokens are unsigned JWT-shaped strings carrying ``exp`` and ``client_id`` claims.
"""

from __future__ import annotations

import base64
import hashlib
import json
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

CLIENT_ID = "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2"
TTL_S = 86400


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def make_jwt(claims: dict[str, Any]) -> str:
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.{secrets.token_hex(16)}"


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


@dataclass
class FakeGarmin:
    now: Callable[[], float] = time.time
    processing: bool = False  # answer 202 without an activity id
    reject_file: str | None = None  # answer 201 with this failure message
    reject_api_tokens: bool = False
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    imports: list[Import] = field(default_factory=list)
    next_upload_id: int = 300_000_001
    next_activity_id: int = 18_000_000_001
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    token_requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def issue(self, *, expires_in: int = TTL_S) -> dict[str, Any]:
        exp = int(self.now()) + expires_in
        access = make_jwt({"client_id": CLIENT_ID, "exp": exp, "scope": ["CONNECT_WRITE"]})
        refresh = secrets.token_hex(24)
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": expires_in,
        }

    def seed_tokens(self, *, expires_in: int = TTL_S) -> dict[str, Any]:
        """Secrets as a user would paste them (no expires_at: it is in the token)."""
        tokens = self.issue(expires_in=expires_in)
        return {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"]}

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

    def _gate(self, request: Request) -> Response | None:
        self.calls[f"{request.method} {request.url.path}"] += 1
        for fault in self.faults:
            if fault.method == request.method and fault.path in request.url.path:
                self.faults.remove(fault)
                return JSONResponse(fault.body, fault.status, headers=fault.headers)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.reject_api_tokens or token not in self.access_tokens:
            return JSONResponse({"message": "Token is not active"}, 401)
        return None

    async def token(self, request: Request) -> Response:
        async with request.form() as data:
            form = {k: str(v) for k, v in data.items()}
        auth = request.headers.get("authorization", "")
        self.token_requests.append((auth, form))
        self.calls["token"] += 1
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:".encode()).decode()
        if auth != expected or form.get("client_id") != CLIENT_ID:
            return JSONResponse({"error": "invalid_client"}, 401)
        old = form.get("refresh_token", "")
        if form.get("grant_type") != "refresh_token" or old not in self.refresh_tokens:
            return JSONResponse({"error": "invalid_grant"}, 400)
        self.refresh_tokens.discard(old)
        return JSONResponse(self.issue())

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
        digest = hashlib.sha256(data).digest()
        for done in self.imports:
            if hashlib.sha256(done.data).digest() == digest:
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
        self.imports.append(Import(upload_id, activity_id, filename, extension, data, headers))
        if self.processing:
            return JSONResponse({"detailedImportResult": result}, 202)
        result["successes"] = [{"internalId": activity_id, "externalId": None, "messages": None}]
        return JSONResponse({"detailedImportResult": result}, 201)
