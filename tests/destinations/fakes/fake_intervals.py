"""A fake of intervals.icu's activity upload API, served by Starlette on the documented paths.

* ``POST /api/v1/athlete/{id}/activities``: multipart ``file``; ``name``, ``description``,
  ``external_id`` as query parameters; answers ``{"icu_athlete_id", "id", "activities": [...]}``.
* ``GET /api/v1/athlete/{id}/activities?oldest=&newest=``: the athlete's activities.
* ``GET /api/v1/athlete/{id}``: the athlete.

Auth: HTTP Basic with user ``API_KEY`` and the key as password, or ``Bearer`` with an OAuth
token (forum.intervals.icu/t/api-access-to-intervals-icu/609, the developer's curl example
``curl -u API_KEY:xxx -F "file=@my_activity.fit" .../athlete/2049151/activities``). Athlete
``0`` is the key's own athlete.

Duplicates, as intervals.icu does them: an upload whose file data hashes the same as an
activity already there creates nothing ("It won't create duplicate activities (hash of file
data is checked)": forum.intervals.icu/t/api-access-to-intervals-icu/609/69) and is answered
**200** with the existing activity, where a new one is **201**; the existing activity may have
come from elsewhere, with another ``external_id`` (github.com/jorge-huxley/intervalssync/
pull/58). Never a 409. ``add_existing`` puts such an activity there.

Errors: ``{"status": 4xx, "error": "..."}``, or a JSON array of such objects
(``[{"status":422,"error":"Name is too long"}]``, forum.intervals.icu/t/
api-access-to-intervals-icu/609?page=21, from the workouts endpoint): the fake answers its
upload validation error as an array, and ``fault`` serves any body.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ATHLETE_ID = "i424242"
API_KEY = "4f2k9x7q1m3n5b8v0c6z2l4j"
OAUTH_TOKEN = "oauth-access-token-7d1e9b3a"


@dataclass
class Activity:
    id: str
    name: str
    description: str | None
    external_id: str | None
    filename: str
    data: bytes

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "icu_athlete_id": ATHLETE_ID,
            "name": self.name,
            "description": self.description,
            "external_id": self.external_id,
            "start_date_local": "2026-03-01T07:15:30",
        }


@dataclass
class Fault:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class FakeIntervals:
    activities: dict[str, Activity] = field(default_factory=dict)
    next_id: int = 1001
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    authorizations: list[str] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)

    def fault(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.faults.append(Fault(method, path, status, body, headers or {}))

    def add_existing(self, data: bytes, *, external_id: str | None = "ride.fit") -> Activity:
        """An activity already on intervals.icu (from a watch, another app...) with ``data``."""
        activity = Activity(
            id=f"i{self.next_id}",
            name="Morning Ride",
            description=None,
            external_id=external_id,
            filename="ride.fit",
            data=data,
        )
        self.next_id += 1
        self.activities[activity.id] = activity
        return activity

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/athlete/{athlete}", self.athlete, methods=["GET"]),
                Route("/api/v1/athlete/{athlete}/activities", self.upload, methods=["POST"]),
                Route(
                    "/api/v1/athlete/{athlete}/activities", self.list_activities, methods=["GET"]
                ),
            ]
        )

    def _gate(self, request: Request) -> Response | None:
        self.calls[f"{request.method} {request.url.path}"] += 1
        self.queries.append(dict(request.query_params))
        for fault in self.faults:
            if fault.method == request.method and fault.path in request.url.path:
                self.faults.remove(fault)
                return JSONResponse(fault.body, fault.status, headers=fault.headers)
        auth = request.headers.get("authorization", "")
        self.authorizations.append(auth)
        basic = "Basic " + base64.b64encode(f"API_KEY:{API_KEY}".encode()).decode()
        if auth not in (basic, f"Bearer {OAUTH_TOKEN}"):
            return JSONResponse({"status": 401, "error": "Unauthorized"}, 401)
        if request.path_params["athlete"] not in ("0", ATHLETE_ID):
            return JSONResponse({"status": 403, "error": "Access denied"}, 403)
        return None

    async def athlete(self, request: Request) -> Response:
        refused = self._gate(request)
        return refused or JSONResponse({"id": ATHLETE_ID, "name": "Alex Rider"})

    async def list_activities(self, request: Request) -> Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        if "oldest" not in request.query_params:
            return JSONResponse({"status": 422, "error": "oldest is required"}, 422)
        return JSONResponse([a.summary() for a in self.activities.values()])

    async def upload(self, request: Request) -> Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        async with request.form() as form:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                return JSONResponse([{"status": 422, "error": "file is required"}], 422)
            data, filename = await file.read(), file.filename or ""
        digest = hashlib.sha256(data).hexdigest()
        for existing in self.activities.values():
            if hashlib.sha256(existing.data).hexdigest() == digest:
                return self._duplicate(existing)
        query = request.query_params
        activity = Activity(
            id=f"i{self.next_id}",
            name=query.get("name") or filename,
            description=query.get("description"),
            external_id=query.get("external_id"),
            filename=filename,
            data=data,
        )
        self.next_id += 1
        self.activities[activity.id] = activity
        return JSONResponse(
            {"icu_athlete_id": ATHLETE_ID, "id": activity.id, "activities": [activity.summary()]},
            201,
        )

    @staticmethod
    def _duplicate(existing: Activity) -> Response:
        """200 (not 201) naming the activity already there; nothing is created."""
        return JSONResponse(
            {"icu_athlete_id": ATHLETE_ID, "id": existing.id, "activities": [existing.summary()]}
        )
