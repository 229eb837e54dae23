"""Strength sets from a workout bundle: what Peloton tracked, else what the class planned.

Tracked: ``workout.movement_tracker_data.completed_movements_summary_data
.repetition_summary_data[]``, one set per item at its ``offset`` (seconds from the workout's
start) for its ``length``. Reps are ``completed_reps`` (``completed_number`` in older
documents); a time-based set's duration is its ``completed_duration`` when given. Weight is
the first ``weight[].weight_data`` with a value, converted from its own unit (lb or kg).

Class plan (no tracking): ``ride_details.segments.segment_list[].subsegments_v2[]``, laid end
to end from each segment's ``start_time_offset``; a subsegment with several movements shares
its length between them equally. Planned sets carry no reps or weight.

Both: sets are clipped to the workout (a class stopped early ends its sets there), overlaps
are cut at the next set's start, and the gaps between sets become rest sets, as a watch
records them. A movement the exercise table lists as rest ("Rest", "Transition"...) is a rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from service.convert.bundle import BundleIn, RepetitionIn
from service.convert.exercises import ExerciseMap
from service.convert.model import StrengthSet

LB_IN_KG = 0.45359237
_WEIGHT_UNITS = {"kg": 1.0, "kgs": 1.0, "lb": LB_IN_KG, "lbs": LB_IN_KG}
#: Gaps shorter than this between two sets are rounding, not rest.
MIN_REST_S = 1.0

SetSource = Literal["tracked", "class_plan"]


@dataclass(frozen=True, slots=True)
class _Planned:
    start: float
    length: float
    movement_id: str | None
    movement_name: str | None
    source: SetSource
    tracking_type: str | None = None
    is_hold: bool | None = None
    repetitions: int | None = None
    weight_kg: float | None = None


def _weight_kg(item: RepetitionIn) -> float | None:
    for weight in item.weight or []:
        data = weight.weight_data
        if data is None or data.weight_value is None or data.weight_value < 0:
            continue
        factor = _WEIGHT_UNITS.get((data.weight_unit or "").strip().casefold())
        if factor is not None:  # an unknown unit is not guessed
            return round(data.weight_value * factor, 3)
    return None


def _tracked(bundle: BundleIn) -> list[_Planned]:
    tracker = bundle.workout.movement_tracker_data
    summary = tracker.completed_movements_summary_data if tracker else None
    planned = []
    for item in (summary.repetition_summary_data if summary else None) or []:
        if item.offset is None or item.offset < 0:
            continue  # a set with no place in time cannot be written
        reps = item.completed_reps if item.completed_reps is not None else item.completed_number
        length = item.length
        timed = item.tracking_type == "time_based" or length is None
        if timed and item.completed_duration is not None and item.completed_duration > 0:
            length = item.completed_duration
        planned.append(
            _Planned(
                start=item.offset,
                length=max(length or 0.0, 0.0),
                movement_id=item.movement_id,
                movement_name=item.movement_name,
                source="tracked",
                tracking_type=item.tracking_type,
                is_hold=item.is_hold,
                repetitions=round(reps) if reps is not None and reps >= 0 else None,
                weight_kg=_weight_kg(item),
            )
        )
    return planned


def _class_plan(bundle: BundleIn) -> list[_Planned]:
    details = bundle.ride_details
    if details is None or details.segments is None:
        return []
    planned = []
    for segment in details.segments.segment_list:
        at = segment.start_time_offset
        for sub in segment.subsegments_v2 or []:
            moves = sub.movements or []
            share = sub.length / len(moves) if moves else 0.0
            for i, move in enumerate(moves):
                planned.append(_Planned(at + i * share, share, move.id, move.name, "class_plan"))
            at += sub.length
    return planned


def _clip(planned: list[_Planned], end_offset: float) -> list[tuple[_Planned, float, float]]:
    """(set, start, duration): in time order, inside the workout, without overlaps."""
    ordered = sorted(planned, key=lambda p: p.start)
    out: list[tuple[_Planned, float, float]] = []
    for i, item in enumerate(ordered):
        start = item.start
        if start >= end_offset:
            break
        stop = min(start + item.length, end_offset)
        if i + 1 < len(ordered):
            stop = min(stop, ordered[i + 1].start)
        if stop > start:
            out.append((item, start, stop - start))
    return out


def strength_sets(
    bundle: BundleIn,
    exercises: ExerciseMap,
    *,
    start: datetime,
    end_offset: float,
    use_class_plan: bool,
) -> list[StrengthSet]:
    """The workout's sets, rests between: tracked ones if Peloton tracked any, else (when
    ``use_class_plan``: strength classes) the class plan's movements."""
    planned = _tracked(bundle) or (_class_plan(bundle) if use_class_plan else [])
    sets: list[StrengthSet] = []
    previous_end: float | None = None

    def rest(at: float, duration: float, source: SetSource) -> StrengthSet:
        return StrengthSet(
            kind="rest",
            start_offset_s=at,
            start=start + timedelta(seconds=at),
            duration_s=duration,
            source=source,
        )

    for item, at, duration in _clip(planned, end_offset):
        if previous_end is not None and at - previous_end >= MIN_REST_S:
            sets.append(rest(previous_end, at - previous_end, item.source))
        previous_end = at + duration
        if exercises.is_rest(item.movement_name):
            sets.append(rest(at, duration, item.source))
            continue
        exercise = exercises.lookup(item.movement_id, item.movement_name)
        sets.append(
            StrengthSet(
                kind="active",
                start_offset_s=at,
                start=start + timedelta(seconds=at),
                duration_s=duration,
                source=item.source,
                movement_id=item.movement_id,
                movement_name=item.movement_name,
                tracking_type=item.tracking_type,
                is_hold=item.is_hold,
                repetitions=item.repetitions,
                weight_kg=item.weight_kg,
                exercise_category=exercise.category,
                exercise_name=exercise.name,
            )
        )
    return _merge_rests(sets)


def _merge_rests(sets: list[StrengthSet]) -> list[StrengthSet]:
    """Back-to-back rests (a gap, then a "Rest" movement) become one rest set."""
    merged: list[StrengthSet] = []
    for s in sets:
        last = merged[-1] if merged else None
        if s.kind == "rest" and last is not None and last.kind == "rest":
            merged[-1] = last.model_copy(update={"duration_s": last.duration_s + s.duration_s})
        else:
            merged.append(s)
    return merged
