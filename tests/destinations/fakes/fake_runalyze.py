"""A fake of Runalyze's Personal API (activity uploads), served by Starlette on its paths.

Where each behaviour comes from (what no source says is marked *assumed*, with the conservative
choice the kind must cope with):

* Base URL ``https://runalyze.com/api/v1``, auth by a header named ``token``, the upload
  ``POST /api/v1/activities/uploads`` with the file in multipart ``file``: Runalyze's own
  example, github.com/Runalyze/personal-api ``bash/upload-activities.sh`` (``curl --header
  'token: ...' --form 'file=@...'``).
* Optional form fields ``title`` and ``note`` (also ``route``, ``elevation_up_file``,
  ``elevation_down_file``); 201 on success, 400 "Invalid input" and 422 constraint violations
  (``{"status": 422, "violations": [{"propertyPath", "message"}], "detail"}``) as errors:
  Runalyze's OpenAPI document (``/api/docs?format=json``, operation ``api_activity_upload``,
  a copy in github.com/philosowaffle/runalyze-mcp ``.ai/knowledge-base``).
* "Activity file will be processed in the background. You can request the state via the
  returned id" (same document), and "Activities will be queued - so you won't see the
  activities immediately" (Runalyze/personal-api ``bash/README.md``): the upload answers a
  ``queue_id`` (read so by the uploader script in the code corpus that calls
  ``verify_upload(queue_id)``), and ``GET /api/v1/activities/uploads/{id}`` answers
  ``{queue_id, activity_id, status, message}`` (OpenAPI ``ActivityUploadStatusDto``), with
  ``status`` "successfully imported" once done (that same uploader script).
* File types fit, tcx, gpx, ttbin, fitlog: the extensions Runalyze's example script uploads.
* ``GET /api/v1/ping`` answering ``["pong"]``: used as the token check by working clients
  (albertoielpo/runalyze-uploader's ``assertPing``; a client quoting Runalyze's example
  ``curl https://runalyze.com/api/v1/ping --header 'token: ...'``). It is not in the OpenAPI
  document.
* A refused token: Runalyze's example script looks for "No valid token" in the answer; the
  status code is *assumed* (401 here; ``bad_token_status`` lets tests try 403 and 400).
* Duplicates: *assumed*; Runalyze spots them in the background import. ``duplicate_mode``:
  ``"status"`` (accepted, then the import fails saying the activity already exists, no id),
  ``"conflict"`` (409 at once, naming the existing activity).
* Failed imports (a file that does not decode): *assumed* ``status`` "failed" with a message.
* Rate limits: none published; tests inject 429 with ``Retry-After`` through :meth:`fault`.

The "import" decodes what arrives the way the converter tests do (FIT with the Garmin FIT SDK
and fitdecode, strictly; TCX against the strict XSD) and keeps what it read for the tests to
compare with what was sent.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.convert.fitcheck import decode
from tests.convert.xsd import validate_tcx

TOKEN = "f3b1c9e07a2d4c58b6e1d0a9c7f24e6b"
FILE_TYPES = (".fit", ".tcx", ".gpx", ".ttbin", ".fitlog")
TCX = {"t": "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"}


@dataclass
class Imported:
    """What the fake's import read from a file."""

    kind: str  # fit | tcx
    sport: str
    start: datetime
    duration_s: float
    samples: int
    calories: float | None


@dataclass
class Upload:
    queue_id: int
    filename: str
    data: bytes
    title: str | None
    note: str | None
    activity_id: int | None = None
    status: str = "queued"
    message: str | None = None
    polls: int = 0
    imported: Imported | None = None

    def state(self) -> dict[str, Any]:
        return {
            "queue_id": self.queue_id,
            "activity_id": self.activity_id,
            "status": self.status,
            "message": self.message,
        }


@dataclass
class Fault:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]


def read_fit(data: bytes) -> Imported:
    fit = decode(data)
    session = fit.one("session")
    return Imported(
        kind="fit",
        sport=str(session.get("sport")),
        start=session["start_time"].astimezone(UTC),
        duration_s=float(session["total_elapsed_time"]),
        samples=len(fit.records),
        calories=session.get("total_calories"),
    )


def read_tcx(data: bytes) -> Imported:
    validate_tcx(data)
    doc = etree.fromstring(data, etree.XMLParser(no_network=True, resolve_entities=False))
    (activity,) = doc.findall("t:Activities/t:Activity", TCX)
    laps = activity.findall("t:Lap", TCX)
    start = datetime.fromisoformat(activity.findtext("t:Id", namespaces=TCX) or "")
    calories = sum(float(lap.findtext("t:Calories", "0", TCX)) for lap in laps)
    return Imported(
        kind="tcx",
        sport=activity.get("Sport", ""),
        start=start.astimezone(UTC),
        duration_s=sum(float(lap.findtext("t:TotalTimeSeconds", "0", TCX)) for lap in laps),
        samples=len(activity.findall(".//t:Trackpoint", TCX)),
        calories=calories,
    )


@dataclass
class FakeRunalyze:
    duplicate_mode: str = "status"  # status | conflict
    bad_token_status: int = 401
    polls_before_import: int = 0  # status answers "queued" this many times first
    never_imports: bool = False
    uploads: dict[int, Upload] = field(default_factory=dict)
    next_queue_id: int = 501
    next_activity_id: int = 90001
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    tokens: list[str] = field(default_factory=list)

    def fault(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next matching request with this instead."""
        self.faults.append(Fault(method, path, status, body, headers or {}))

    @property
    def activities(self) -> list[Upload]:
        return [u for u in self.uploads.values() if u.status == "successfully imported"]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/ping", self.ping, methods=["GET"]),
                Route("/api/v1/activities/uploads", self.upload, methods=["POST"]),
                Route("/api/v1/activities/uploads/{queue_id}", self.status, methods=["GET"]),
            ]
        )

    def _gate(self, request: Request) -> Response | None:
        self.calls[f"{request.method} {request.url.path}"] += 1
        for fault in self.faults:
            if fault.method == request.method and fault.path in request.url.path:
                self.faults.remove(fault)
                return JSONResponse(fault.body, fault.status, headers=fault.headers)
        token = request.headers.get("token", "")
        self.tokens.append(token)
        if token != TOKEN:
            return JSONResponse({"message": "No valid token"}, self.bad_token_status)
        return None

    async def ping(self, request: Request) -> Response:
        return self._gate(request) or JSONResponse(["pong"])

    async def upload(self, request: Request) -> Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        async with request.form() as form:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                return _violation("file", "This value should not be blank.")
            data, filename = await file.read(), file.filename or ""
            title, note = form.get("title"), form.get("note")
        if not filename.lower().endswith(FILE_TYPES):
            return JSONResponse(
                {"title": "An error occurred", "detail": f"Unsupported file type: {filename}"},
                400,
                media_type="application/problem+json",
            )
        digest = hashlib.sha256(data).hexdigest()
        existing = next(
            (u for u in self.activities if hashlib.sha256(u.data).hexdigest() == digest), None
        )
        if existing is not None and self.duplicate_mode == "conflict":
            return JSONResponse(
                {"message": "Activity already exists", "activity_id": existing.activity_id}, 409
            )
        upload = Upload(
            queue_id=self.next_queue_id,
            filename=filename,
            data=data,
            title=title if isinstance(title, str) else None,
            note=note if isinstance(note, str) else None,
        )
        self.next_queue_id += 1
        self.uploads[upload.queue_id] = upload
        if existing is not None:
            upload.status, upload.message = "failed", "Activity already exists (duplicate)"
        return JSONResponse({"queue_id": upload.queue_id}, 201)

    async def status(self, request: Request) -> Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        upload = self.uploads.get(int(request.path_params["queue_id"]))
        if upload is None:
            return JSONResponse({"title": "Not Found", "detail": "Not Found"}, 404)
        upload.polls += 1
        due = upload.polls > self.polls_before_import and not self.never_imports
        if upload.status == "queued" and due:
            self._import(upload)
        return JSONResponse(upload.state())

    def _import(self, upload: Upload) -> None:
        try:
            if upload.filename.lower().endswith(".fit"):
                upload.imported = read_fit(upload.data)
            else:
                upload.imported = read_tcx(upload.data)
        except Exception as exc:  # the real import reports any unreadable file the same way
            upload.status, upload.message = "failed", f"Could not parse file: {exc}"[:200]
            return
        upload.activity_id = self.next_activity_id
        self.next_activity_id += 1
        upload.status = "successfully imported"


def _violation(path: str, message: str) -> Response:
    return JSONResponse(
        {
            "status": 422,
            "violations": [{"propertyPath": path, "message": message}],
            "detail": f"{path}: {message}",
        },
        422,
    )
