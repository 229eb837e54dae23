"""Peloton JSON documents built from specs: workouts, rides, ride details, the user.

Field names, order and value types follow real captures; values are the sandbox's own.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from service.peloton.sandbox.catalog import DEVICES, IMAGE_BASE, JUST_RIDE_ID, unit_label
from service.peloton.sandbox.graph import segment_list, total_work_j
from service.peloton.sandbox.plan import (
    instructor_cues,
    movement_tracker,
    subsegments,
    target_metrics,
)
from service.peloton.sandbox.specs import (
    DEFAULT_ANCHOR,
    Instructor,
    RideSpec,
    UserProfile,
    WorkoutSpec,
    derive,
)


def utc_offset(timezone: str, at: int) -> int:
    """Seconds local time is ahead of UTC in ``timezone`` at epoch ``at``."""
    offset = datetime.fromtimestamp(at, tz=UTC).astimezone(ZoneInfo(timezone)).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def instructor_json(instructor: Instructor) -> dict[str, Any]:
    slug = f"{instructor.first_name}{instructor.last_name}".lower()
    return {
        "id": instructor.instructor_id,
        "bio": f"{instructor.first_name} teaches sandbox classes.",
        "short_bio": "Sandbox instructor.",
        "coach_type": "peloton_coach",
        "is_visible": True,
        "username": slug,
        "name": instructor.name,
        "first_name": instructor.first_name,
        "last_name": instructor.last_name,
        "image_url": f"{IMAGE_BASE}/instructors/{slug}.png",
        "fitness_disciplines": [],
    }


def ride_json(ride: RideSpec, *, with_instructor: bool) -> dict[str, Any]:
    """The ``ride`` object joined into a workout (``joins=ride[,ride.instructor]``)."""
    if ride.is_just_ride:
        noun = "RIDE" if ride.spec.fitness_discipline == "cycling" else "RUN"
        return {
            "id": JUST_RIDE_ID,
            "is_archived": False,
            "instructor": {"name": f"JUST {noun}", "image_url": f"{IMAGE_BASE}/just-ride.png"},
            "title": ride.title,
            "scheduled_start_time": None,
            "duration": ride.duration,
        }
    spec = ride.spec
    stats = random.Random(derive(ride.ride_id, "ride-stats"))
    difficulty = round(stats.uniform(4.5, 8.9), 4)
    start_offset = spec.pedaling_start_offset
    distance, distance_unit, distance_text = None, None, None
    if ride.fixed_distance:
        distance, distance_unit = ride.fixed_distance
        distance_text = f"{distance:g} {'km' if distance_unit == 'metric' else 'mi'}"
    out: dict[str, Any] = {
        "class_type_ids": [f"{derive(ride.kind, 'type'):016x}" * 2],
        "content_provider": "virtual_active" if spec.workout_type == "scenic" else "peloton",
        "content_format": spec.content_format,
        "description": ride.description,
        "difficulty_estimate": difficulty,
        "difficulty_rating_avg": difficulty,
        "difficulty_rating_count": stats.randint(50, 9000),
        "difficulty_level": None,
        "duration": ride.duration,
        "fitness_discipline": spec.fitness_discipline,
        "fitness_discipline_display_name": spec.discipline_display,
        "has_pedaling_metrics": spec.series == "bike",
        "id": ride.ride_id,
        "image_url": f"{IMAGE_BASE}/rides/{ride.ride_id}.png",
        "instructor_id": ride.instructor.instructor_id if ride.instructor else None,
        "is_archived": True,
        "is_explicit": False,
        "is_fixed_distance": ride.fixed_distance is not None,
        "distance": distance,
        "distance_unit": distance_unit,
        "distance_display_value": distance_text,
        "is_outdoor": spec.is_outdoor,
        "language": "english",
        "length": ride.duration + start_offset + 60,
        "location": ride.location or "sandbox-studio-1",
        "metrics": list(spec.ride_metrics),
        "origin_locale": "en-US",
        "original_air_time": ride.original_air_time,
        "overall_rating_avg": round(stats.uniform(0.95, 0.999), 4),
        "overall_rating_count": stats.randint(40, 8000),
        "pedaling_start_offset": start_offset,
        "pedaling_end_offset": start_offset + ride.duration,
        "pedaling_duration": ride.duration,
        "ride_type_id": f"{derive(ride.kind, 'type'):016x}" * 2,
        "scheduled_start_time": ride.original_air_time,
        "title": ride.title,
        "total_workouts": stats.randint(500, 90000),
        "total_in_progress_workouts": stats.randint(0, 40),
    }
    if with_instructor:
        out["instructor"] = instructor_json(ride.instructor) if ride.instructor else None
    return out


def ride_details_json(ride: RideSpec) -> dict[str, Any]:
    """``GET /api/ride/{id}/details``: the ride plus its class plan (movements, cues)."""
    segments = [
        {**listed, "subsegments_v2": subsegments(ride, seg.name, seg.start, seg.length)}
        for listed, seg in zip(segment_list(ride), ride.segments, strict=True)
    ]
    return {
        "ride": ride_json(ride, with_instructor=True),
        "segments": {"segment_list": segments, "segment_category_list": []},
        "instructor_cues": instructor_cues(ride),
        "target_metrics_performance_data": target_metrics(ride),
        "target_class_metrics": None,
        "events": [],
    }


def workout_json(
    spec: WorkoutSpec, *, with_ride: bool = True, with_instructor: bool = True, listed: bool = False
) -> dict[str, Any]:
    """A workout as ``GET /api/workout/{id}`` (or, ``listed``, as a list item) returns it."""
    kind = spec.spec
    display, platform = DEVICES[spec.device_type]
    end_time = None if spec.in_progress else spec.start_time + spec.duration
    video = spec.recorded if kind.is_class else 0
    out: dict[str, Any] = {
        "created_at": spec.created_at,
        "device_type": spec.device_type,
        "end_time": end_time,
        "fitness_discipline": kind.fitness_discipline,
        "has_pedaling_metrics": kind.series == "bike",
        "has_leaderboard_metrics": kind.is_class and kind.series in ("bike", "tread", "row"),
        "id": spec.workout_id,
        "is_total_work_personal_record": False,
        "is_outdoor": kind.is_outdoor,
        "metrics_type": kind.metrics_type,
        "name": kind.workout_name,
        "peloton_id": spec.peloton_id,
        "platform": platform,
        "start_time": spec.start_time,
        "status": "IN_PROGRESS" if spec.in_progress else "COMPLETE",
        "timezone": spec.timezone,
        "title": spec.ride.title if spec.ride.is_just_ride else None,
        "total_work": total_work_j(spec),
        "user_id": spec.user.user_id,
        "workout_type": kind.workout_type,
        "total_video_watch_time_seconds": video,
        "total_video_buffering_seconds": 0,
        "v2_total_video_watch_time_seconds": video,
        "v2_total_video_buffering_seconds": 0,
        "created": spec.created_at,
        "device_time_created_at": spec.created_at + utc_offset(spec.timezone, spec.created_at),
        "strava_id": None,
        "fitbit_id": None,
        "effort_zones": None,
        "service_id": None,
    }
    if not listed:
        out.update(
            {
                "is_skip_intro_available": kind.is_class,
                "pause_time_remaining": None,
                "pause_time_elapsed": None,
                "is_paused": False,
                "has_paused": False,
                "is_pause_available": False,
                "total_heart_rate_zone_durations": None,
                "average_effort_score": None,
                "achievement_templates": [],
                "leaderboard_rank": None,
                "total_leaderboard_users": 0,
                "ftp_info": {
                    "ftp": spec.user.ftp if kind.series == "bike" else 0,
                    "ftp_source": "ftp_manual_source" if kind.series == "bike" else None,
                    "ftp_workout_id": None,
                },
                "device_type_display_name": display,
                "movement_tracker_data": movement_tracker(spec),
            }
        )
    if with_ride:
        out["ride"] = ride_json(spec.ride, with_instructor=with_instructor)
    return out


def me_json(user: UserProfile, workouts: list[WorkoutSpec]) -> dict[str, Any]:
    """``GET /api/me``."""
    pedaling = sum(1 for w in workouts if w.spec.series == "bike")
    counts: dict[str, int] = {}
    for w in workouts:
        counts[w.spec.fitness_discipline] = counts.get(w.spec.fitness_discipline, 0) + 1
    zones = [round(user.max_hr * p) for p in (0.65, 0.75, 0.85, 0.95)]
    return {
        "id": user.user_id,
        "username": user.username,
        "email": user.email,
        "name": user.name,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "location": user.timezone.split("/")[-1].replace("_", " "),
        "image_url": f"{IMAGE_BASE}/users/{user.user_id}.png",
        "is_profile_private": False,
        "created_at": user.created_at,
        "last_workout_at": max((w.created_at for w in workouts), default=None),
        "total_workouts": len(workouts),
        "total_pedaling_metric_workouts": pedaling,
        "total_non_pedaling_metric_workouts": len(workouts) - pedaling,
        "workout_counts": [
            {"name": name.title(), "slug": name, "count": n, "icon_url": None}
            for name, n in sorted(counts.items())
        ],
        "default_max_heart_rate": user.max_hr,
        "customized_max_heart_rate": None,
        "default_heart_rate_zones": [0, *zones],
        "customized_heart_rate_zones": None,
        "cycling_ftp": user.ftp,
        "cycling_workout_ftp": user.ftp,
        "cycling_ftp_source": "ftp_manual_source",
        "cycling_ftp_workout_id": None,
        "estimated_cycling_ftp": user.ftp,
        "weight": round(user.weight_kg * (2.20462 if user.units == "imperial" else 1.0), 1),
        "height": 68.0 if user.units == "imperial" else 173.0,
        "birthday": (DEFAULT_ANCHOR - (2026 - user.birth_year) * 31_557_600),
        "gender": None,
        "has_active_digital_subscription": True,
        "has_active_device_subscription": True,
        "is_strava_authenticated": False,
        "member_groups": [],
        "paired_devices": [],
    }


def settings_json(user: UserProfile) -> dict[str, Any]:
    """``GET /api/user/{id}/settings``: display units follow ``distance_unit``."""
    imperial = user.units == "imperial"
    return {
        "distance_unit": user.units,
        "weight_unit": "lb" if imperial else "kg",
        "height_unit": "in" if imperial else "cm",
        "speed_unit": unit_label("speed", user.units),
        "timezone": user.timezone,
        "privacy": {"workout_maps_private": False, "profile_private": False},
        "auto_post_workout_to_strava": False,
        "auto_post_workout_to_fitbit": False,
    }
