"""Parse a Peloton workout bundle into the canonical :class:`Activity`.

Rules that matter (see the research notes on Peloton's API):

- sample time = ``workout.start_time`` + ``seconds_since_pedaling_start[i]``, never the index;
- GPS points are joined on ``seconds_offset_from_start``;
- each value is converted from its own ``display_unit``;
- null values and heart rate 0 (strap not yet reading) are "not recorded", never zero;
- the workout's timezone is metadata and never shifts UTC times.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.convert.bundle import BundleIn, GraphIn, WorkoutIn, load_bundle
from service.convert.cues import class_intervals, follow_intervals
from service.convert.exercises import ExerciseMap, default_exercise_map
from service.convert.model import Activity, Device, Discipline, Sample, Source, Summary
from service.convert.series import Series, build_series, find_metric, scale_to, speed_metric
from service.convert.stats import build_laps, lap_bounds, span_stats
from service.convert.strength import strength_sets
from service.convert.units import distance_factor, is_pace, to_mps

JUST_RIDE_ID = "0" * 32

DISCIPLINES: dict[str, Discipline] = {
    "cycling": Discipline.CYCLING,
    "running": Discipline.RUNNING,
    "walking": Discipline.WALKING,
    "caesar": Discipline.ROWING,
    "rowing": Discipline.ROWING,
    "bike_bootcamp": Discipline.BIKE_BOOTCAMP,
    "circuit": Discipline.TREAD_BOOTCAMP,
    "tread_bootcamp": Discipline.TREAD_BOOTCAMP,
    "caesar_bootcamp": Discipline.ROW_BOOTCAMP,
    "row_bootcamp": Discipline.ROW_BOOTCAMP,
    "strength": Discipline.STRENGTH,
    "yoga": Discipline.YOGA,
    "meditation": Discipline.MEDITATION,
    "stretching": Discipline.STRETCHING,
    "cardio": Discipline.CARDIO,
}

DEVICE_NAMES: dict[str, str] = {
    "home_bike_v1": "Peloton Bike",
    "home_bike": "Peloton Bike",
    "home_bike_v2": "Peloton Bike+",
    "home_bike_plus": "Peloton Bike+",
    "home_tread": "Peloton Tread",
    "home_treadmill": "Peloton Tread",
    "caesar": "Peloton Row",
}


def parse_bundle(
    data: bytes | str | dict[str, Any], *, exercises: ExerciseMap | None = None
) -> Activity:
    """Validate and convert a workout bundle (JSON text or decoded object).

    ``exercises`` maps strength movements to Garmin exercises; the default is the built-in
    table with the operator's extra file (``PELOSYNC_STRENGTH_EXERCISES_FILE``) merged over it.
    """
    return activity_from_bundle(load_bundle(data), exercises=exercises)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _utc_offset(tz_name: str | None, at: datetime) -> int | None:
    if not tz_name:
        return None
    try:
        offset = at.astimezone(ZoneInfo(tz_name)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return None  # an unknown zone is only lost metadata, not a reason to fail
    return int(offset.total_seconds()) if offset is not None else None


def _device(workout: WorkoutIn) -> Device:
    kind = workout.device_type
    name = DEVICE_NAMES.get(kind or "")
    if name is None:
        shown = workout.device_type_display_name or kind
        name = f"Peloton App ({shown})" if shown else "Peloton"
    return Device(type=kind, name=name, platform=workout.platform)


def _summary_value(graph: GraphIn, *slugs: str) -> tuple[float, str | None] | None:
    for slug in slugs:
        for item in graph.summaries:
            if item.slug == slug and item.value is not None:
                return item.value, item.display_unit
    return None


def _average_value(graph: GraphIn, slug: str) -> float | None:
    for item in graph.average_summaries:
        if item.slug == slug:
            return item.value
    return None


def _summary_distance(graph: GraphIn) -> float | None:
    found = _summary_value(graph, "distance")
    if found is None:
        return None
    value, unit = found
    return value * distance_factor(unit, what="performance_graph.summaries[distance]")


def _every_n(offsets: list[float]) -> float | None:
    if len(offsets) < 2:
        return None
    return statistics.median(b - a for a, b in zip(offsets, offsets[1:], strict=False))


def _speed_extremes(graph: GraphIn) -> tuple[float | None, float | None]:
    metric = speed_metric(graph)
    if metric is None:
        return None, None
    what = f"performance_graph.metrics[{metric.slug}]"
    avg = to_mps(metric.average_value, metric.display_unit, what=what)
    # For a pace, Peloton's max_value is the fastest pace, which is the top speed.
    top = to_mps(metric.max_value, metric.display_unit, what=what)
    if is_pace(metric.display_unit) and avg is not None and top is not None and top < avg:
        top = None  # not the fastest pace after all: do not guess
    return avg, top


def _samples(series: Series, start: datetime) -> list[Sample]:
    # Column-wise and positional: an hour at 1 Hz is 3,600 samples, and this is the hot loop.
    times = [start + timedelta(seconds=off) for off in series.offsets]
    return list(
        map(
            Sample,
            series.offsets,
            times,
            series.heart_rate,
            series.power,
            series.cadence,
            series.speed,
            series.distance,
            series.latitude,
            series.longitude,
            series.altitude,
            series.resistance,
            series.incline,
            series.track_segment,
        )
    )


def _summary(
    bundle: BundleIn, samples: list[Sample], duration_s: float, distance_m: float | None
) -> Summary:
    workout, graph = bundle.workout, bundle.performance_graph
    calories = _summary_value(graph, "calories", "total_calories")
    computed = span_stats(
        samples,
        duration_s=duration_s,
        distance_m=distance_m,
        calories_kcal=calories[0] if calories else None,
    )
    hr = find_metric(graph, "heart_rate")
    power = find_metric(graph, "output")
    cadence = find_metric(graph, "stroke_rate", "cadence")
    avg_speed, max_speed = _speed_extremes(graph)
    work = workout.total_work if workout.total_work and workout.total_work > 0 else None
    if work is None and (kj := _summary_value(graph, "total_output")) and kj[0] > 0:
        work = kj[0] * 1000.0
    elevation = _summary_value(graph, "elevation")

    def peloton_first(reported: float | None, fallback: float | None) -> float | None:
        return reported if reported is not None else fallback

    def hr_value(reported: float | None, fallback: int | None) -> int | None:
        return round(reported) if reported is not None and reported > 0 else fallback

    return Summary(
        duration_s=duration_s,
        distance_m=distance_m,
        calories_kcal=computed.calories_kcal,
        avg_heart_rate=hr_value(hr.average_value if hr else None, computed.avg_heart_rate),
        max_heart_rate=hr_value(hr.max_value if hr else None, computed.max_heart_rate),
        avg_power=peloton_first(power.average_value if power else None, computed.avg_power),
        max_power=peloton_first(power.max_value if power else None, computed.max_power),
        avg_cadence=peloton_first(cadence.average_value if cadence else None, computed.avg_cadence),
        max_cadence=peloton_first(cadence.max_value if cadence else None, computed.max_cadence),
        avg_speed=peloton_first(avg_speed, computed.avg_speed),
        max_speed=peloton_first(max_speed, computed.max_speed),
        total_work_j=work,
        elevation_gain_m=(
            elevation[0]
            * distance_factor(elevation[1], what="performance_graph.summaries[elevation]")
            if elevation
            else None
        ),
        avg_resistance=_average_value(graph, "avg_resistance"),
        avg_incline=_average_value(graph, "avg_incline"),
    )


def _has_movements(bundle: BundleIn) -> bool:
    tracker = bundle.workout.movement_tracker_data
    summary = tracker.completed_movements_summary_data if tracker else None
    if summary and summary.repetition_summary_data:
        return True
    details = bundle.ride_details
    segments = details.segments.segment_list if details and details.segments else []
    return any(sub.movements for seg in segments for sub in seg.subsegments_v2 or [])


def activity_from_bundle(bundle: BundleIn, *, exercises: ExerciseMap | None = None) -> Activity:
    """Build the canonical activity from a validated bundle."""
    workout, graph = bundle.workout, bundle.performance_graph
    discipline = DISCIPLINES.get(workout.fitness_discipline, Discipline.OTHER)
    start = _utc(workout.start_time)
    series = build_series(graph, rowing=discipline in (Discipline.ROWING, Discipline.ROW_BOOTCAMP))
    last_offset = series.offsets[-1] if series.offsets else 0.0
    if workout.end_time is not None and workout.end_time >= workout.start_time:
        end_offset = workout.end_time - workout.start_time
    else:
        end_offset = graph.duration if graph.duration and graph.duration > 0 else last_offset
    end_offset = max(end_offset, last_offset)
    distance_m = _summary_distance(graph)
    series.distance = scale_to(series.distance, distance_m)
    if distance_m is None:
        distance_m = next((d for d in reversed(series.distance) if d is not None), None)
    samples = _samples(series, start)

    segments = graph.segment_list
    if not segments and bundle.ride_details and bundle.ride_details.segments:
        segments = bundle.ride_details.segments.segment_list
    summary = _summary(bundle, samples, end_offset, distance_m)
    bounds = follow_intervals(lap_bounds(segments, end_offset), class_intervals(bundle), end_offset)
    laps = build_laps(
        samples, bounds, start=start, end_offset=end_offset, calories_kcal=summary.calories_kcal
    )
    sets = (
        strength_sets(
            bundle,
            exercises or default_exercise_map(),
            start=start,
            end_offset=end_offset,
            use_class_plan=discipline is Discipline.STRENGTH,
        )
        if _has_movements(bundle)
        else []
    )
    ride = workout.ride
    ride_id = ride.id if ride and ride.id and ride.id != JUST_RIDE_ID else None
    instructor = ride.instructor.name if ride and ride.instructor and ride_id else None
    has_gps = any(s.latitude is not None for s in samples)
    is_outdoor = bool(workout.is_outdoor or (ride and ride.is_outdoor) or has_gps)
    title = workout.title or (ride.title if ride else None) or workout.name or "Peloton workout"
    return Activity(
        source=Source(
            workout_id=workout.id,
            user_id=workout.user_id,
            ride_id=ride_id,
            every_n=_every_n(list(graph.seconds_since_pedaling_start)),
        ),
        discipline=discipline,
        peloton_discipline=workout.fitness_discipline,
        is_outdoor=is_outdoor,
        title=title,
        instructor=instructor,
        device=_device(workout),
        start=start,
        end=start + timedelta(seconds=end_offset),
        timezone=workout.timezone,
        utc_offset_s=_utc_offset(workout.timezone, start),
        summary=summary,
        laps=laps,
        sets=sets,
        samples=samples,
    )
