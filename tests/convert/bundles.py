"""Builders of Peloton-shaped workout bundles for parser and end-to-end converter tests.

These are the project's own fixtures: small, explicit, and shaped like the real API's
responses (``GET /api/workout/{id}`` and ``/performance_graph``).
"""

from __future__ import annotations

from typing import Any

START = 1_773_500_966  # 2026-03-14T15:09:26Z

Metric = tuple[str, list[float | None]]  # (display_unit, values)


def metric(slug: str, unit: str, values: list[float | None], **extra: Any) -> dict[str, Any]:
    present = [v for v in values if v is not None]
    return {
        "display_name": slug.replace("_", " ").title(),
        "display_unit": unit,
        "max_value": max(present) if present else None,
        "average_value": round(sum(present) / len(present), 2) if present else None,
        "values": values,
        "slug": slug,
        **extra,
    }


def summary(slug: str, unit: str, value: float | None) -> dict[str, Any]:
    return {"display_name": slug.title(), "display_unit": unit, "value": value, "slug": slug}


def segment(name: str, start: float, length: float) -> dict[str, Any]:
    return {
        "id": f"{abs(hash((name, start))) % 16**32:032x}",
        "name": name,
        "start_time_offset": start,
        "length": length,
        "icon_slug": name.lower(),
        "metrics_type": "cycling",
        "intensity_in_mets": 5.0,
    }


def coordinates(
    points: list[tuple[float, float, float]], distances: list[float] | None = None, unit: str = "mi"
) -> list[dict[str, Any]]:
    """(offset, lat, lon) triples as Peloton coordinates."""
    return [
        {
            "seconds_offset_from_start": off,
            "latitude": lat,
            "longitude": lon,
            "accuracy": 5.0,
            "distance": distances[i] if distances else 0.0,
            "distance_display_unit": unit,
        }
        for i, (off, lat, lon) in enumerate(points)
    ]


def make_bundle(
    *,
    offsets: list[float],
    metrics: list[dict[str, Any]] | None = None,
    summaries: list[dict[str, Any]] | None = None,
    average_summaries: list[dict[str, Any]] | None = None,
    segments: list[dict[str, Any]] | None = None,
    location_data: list[dict[str, Any]] | None = None,
    discipline: str = "cycling",
    start_time: int = START,
    duration: float | None = None,
    end_time: int | None | str = "auto",
    timezone: str | None = "America/Chicago",
    title: str | None = None,
    ride_title: str = "20 min Test Ride",
    instructor: str | None = "Test Instructor",
    ride_id: str = "f" * 32,
    device_type: str = "home_bike_v1",
    total_work: float | None = None,
    workout_id: str = "0123456789abcdef0123456789abcdef",
    is_outdoor: bool | None = None,
    ride_details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A bundle dict; ``duration`` defaults to the last offset."""
    dur = duration if duration is not None else (offsets[-1] if offsets else 0)
    end = start_time + int(dur) if end_time == "auto" else end_time
    workout: dict[str, Any] = {
        "id": workout_id,
        "user_id": "a" * 32,
        "created_at": start_time - 30,
        "start_time": start_time,
        "end_time": end,
        "timezone": timezone,
        "fitness_discipline": discipline,
        "status": "COMPLETE",
        "workout_type": "class",
        "name": f"{discipline.title()} Workout",
        "title": title,
        "device_type": device_type,
        "device_type_display_name": "Bike",
        "platform": "home_bike",
        "total_work": total_work,
        "ride": {
            "id": ride_id,
            "title": ride_title,
            "duration": dur,
            "instructor": {"name": instructor} if instructor else None,
            "fitness_discipline": discipline,
        },
    }
    if is_outdoor is not None:
        workout["is_outdoor"] = is_outdoor
    return {
        "workout": workout,
        "performance_graph": {
            "duration": dur,
            "is_class_plan_shown": bool(segments),
            "segment_list": segments or [],
            "seconds_since_pedaling_start": offsets,
            "average_summaries": average_summaries or [],
            "summaries": summaries or [],
            "metrics": metrics or [],
            "has_apple_watch_metrics": False,
            "location_data": location_data or [],
            "is_location_data_accurate": bool(location_data),
        },
        "ride_details": ride_details,
    }
