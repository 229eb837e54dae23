"""The contract between the delivery engine and each kind of destination.

The engine (``service.deliveries``) claims a due delivery, converts the workout (off the event
loop), builds a :class:`DeliveryRequest` and calls ``deliver`` on the destination's kind. The
kind does the I/O and either returns :class:`Delivered` or raises :class:`DeliveryError`
describing what happened; the engine records the attempt and decides on retries from it.
Kinds never touch the database.

Error tree (all :class:`DeliveryError`)::

    DeliveryError            retryable by default (network errors, 5xx, timeouts)
    ├── PermanentFailure     will never work as is (4xx other than 408/409/425/429, bad file)
    │   └── DestinationGone  the destination itself is gone (410): disable it
    ├── NeedsReauthorization the destination's credentials were refused (401): park it
    └── Postponed            rate limited: retry after ``retry_after`` s, not counted as failure
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from service.errors import PelosyncError

EXCERPT_LIMIT = 4096
#: What kinds put in ``retry_after`` after a timeout or a 429 without ``Retry-After``: an
#: overloaded receiver gets at least a minute (Svix's ``OVERLOAD_PENALTY_SECS``).
OVERLOAD_PENALTY_S = 60.0
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def excerpt(text: str | bytes | None) -> str | None:
    """At most 4 KB of a response body, for the attempt log."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text[:EXCERPT_LIMIT].decode("utf-8", errors="replace")
    return text[:EXCERPT_LIMIT]


@dataclass(frozen=True)
class OutgoingFile:
    format: str  # tcx | gpx | fit | json
    filename: str
    content_type: str
    data: bytes
    # Computed with the conversion (off the event loop) when given.
    digest: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return self.digest or hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class AccountInfo:
    id: int
    label: str
    peloton_user_id: str
    peloton_username: str | None


@dataclass(frozen=True)
class WorkoutInfo:
    """The workout summary every destination may use (names, descriptions, payloads)."""

    id: int
    peloton_workout_id: str
    discipline: str
    title: str
    instructor: str | None
    start: datetime
    end: datetime | None
    duration_s: float | None
    distance_m: float | None
    calories_kcal: float | None
    avg_heart_rate: int | None
    max_heart_rate: int | None
    avg_power: float | None
    is_outdoor: bool
    has_gps: bool

    def as_payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "peloton_workout_id": self.peloton_workout_id,
            "discipline": self.discipline,
            "title": self.title,
            "instructor": self.instructor,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "end": self.end.isoformat().replace("+00:00", "Z") if self.end else None,
            "duration_s": self.duration_s,
            "distance_m": self.distance_m,
            "calories_kcal": self.calories_kcal,
            "avg_heart_rate": self.avg_heart_rate,
            "max_heart_rate": self.max_heart_rate,
            "avg_power": self.avg_power,
            "is_outdoor": self.is_outdoor,
        }


@dataclass(frozen=True)
class DeliveryRequest:
    delivery_id: int
    message_id: str  # stable across retries: receivers dedupe on it
    attempt: int  # 1-based
    account: AccountInfo
    workout: WorkoutInfo
    file: OutgoingFile
    # A signed, expiring URL where the service serves this file (webhook files over the inline
    # limit), given the receiver's address; None when the service knows of no address the
    # receiver can reach (see service.files.signing.link_base).
    download_url: Callable[[IPAddress], str | None] | None = None


@dataclass(frozen=True)
class Delivered:
    status_code: int | None = None
    external_id: str | None = None
    response_excerpt: str | None = None
    # Secrets or config the kind changed while delivering (rotated OAuth tokens), to persist.
    updated_secrets: dict[str, Any] | None = field(default=None)
    # A webhook's receiver refused a file inline (HTTP 413): files over this size go as links.
    learned_inline_max: int | None = None


class DeliveryError(PelosyncError):
    """A failed attempt; retryable unless a subclass says otherwise."""

    title = "Delivery failed"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        remote_status: int | None = None,
        response_excerpt: str | None = None,
        retry_after: float | None = None,
        updated_secrets: dict[str, Any] | None = None,
        learned_inline_max: int | None = None,
    ) -> None:
        super().__init__(message)
        # The destination's HTTP status (``status_code`` is this error's own API status).
        self.remote_status = remote_status
        self.response_excerpt = response_excerpt
        self.retry_after = retry_after
        self.updated_secrets = updated_secrets
        self.learned_inline_max = learned_inline_max  # as on Delivered


class PermanentFailure(DeliveryError):
    retryable = False


class DestinationGone(PermanentFailure):
    """The destination answered that it no longer exists (HTTP 410): disable it."""


#: How a destination parked for new credentials is marked (``disabled_reason`` starts with it):
#: new credentials lift exactly such a parking, never a destination an admin disabled.
REAUTHORIZATION_REASON = "needs re-authorization"


class NeedsReauthorization(DeliveryError):
    """Credentials refused: the destination waits for the user to re-authorise it."""

    retryable = False


class Postponed(DeliveryError):
    """Rate limited: try again after ``retry_after`` seconds; not a failure."""


class DestinationKindHandler(Protocol):
    """What every kind implements. Instances are built per destination with their config."""

    async def deliver(self, request: DeliveryRequest) -> Delivered: ...

    async def ping(self) -> Delivered:
        """A test delivery (webhook ``ping`` event, an auth check for services)."""
        ...
