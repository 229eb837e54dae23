"""Test helpers shared by the fitness-service tests: delivery requests and a secret scanner."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from service.destinations.kinds.base import (
    AccountInfo,
    DeliveryError,
    DeliveryRequest,
    OutgoingFile,
    WorkoutInfo,
)

START = datetime(2026, 3, 1, 7, 15, 30, tzinfo=UTC)
CONTENT_TYPES = {
    "fit": "application/vnd.ant.fit",
    "tcx": "application/vnd.garmin.tcx+xml",
    "gpx": "application/gpx+xml",
    "json": "application/json",
}


def delivery(
    *,
    delivery_id: int = 41,
    attempt: int = 1,
    fmt: str = "fit",
    data: bytes | None = None,
    title: str = "30 min Power Zone Ride",
    instructor: str | None = "Matt Wilpers",
    discipline: str = "cycling",
    is_outdoor: bool = False,
    peloton_workout_id: str = "f00dfeed0123456789abcdef01234567",
) -> DeliveryRequest:
    payload = data if data is not None else b"<file>" + fmt.encode() * 64 + b"</file>"
    return DeliveryRequest(
        delivery_id=delivery_id,
        message_id=f"msg_{delivery_id:08d}",
        attempt=attempt,
        account=AccountInfo(id=3, label="Alex", peloton_user_id="u-1", peloton_username="alex"),
        workout=WorkoutInfo(
            id=11,
            peloton_workout_id=peloton_workout_id,
            discipline=discipline,
            title=title,
            instructor=instructor,
            start=START,
            end=START + timedelta(minutes=30),
            duration_s=1800.0,
            distance_m=15000.0,
            calories_kcal=400.0,
            avg_heart_rate=140,
            max_heart_rate=171,
            avg_power=180.0,
            is_outdoor=is_outdoor,
            has_gps=is_outdoor,
        ),
        file=OutgoingFile(
            format=fmt,
            filename=f"2026-03-01-power-zone-ride.{fmt}",
            content_type=CONTENT_TYPES[fmt],
            data=payload,
        ),
    )


def error_text(exc: DeliveryError) -> str:
    """Everything an error carries that ends up stored or shown (secrets excluded on purpose:
    ``updated_secrets`` is meant to hold them and is stored encrypted)."""
    return " ".join(str(part) for part in (exc, exc.message, exc.response_excerpt) if part)


def leaked(secrets: Iterable[str], *texts: str) -> list[str]:
    """The secrets that appear in any of ``texts``."""
    haystack = "\n".join(texts)
    return [secret for secret in secrets if secret and secret in haystack]
