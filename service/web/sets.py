"""The strength sets table of the workout page, from the same parse as its charts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.convert.model import Activity
from service.convert.peloton import parse_bundle
from service.web.charts import WorkoutCharts, charts_for


@dataclass(frozen=True)
class SetRow:
    """One row: a set (numbered) or a rest between sets."""

    number: int | None  # None for a rest
    movement: str
    exercise: str | None  # the Garmin exercise it is written as; None: not mapped
    repetitions: int | None
    weight_kg: float | None  # 0: body weight
    start_offset_s: float
    duration_s: float
    planned: bool  # from the class plan, not counted by Peloton


def set_rows(activity: Activity) -> list[SetRow]:
    rows, number = [], 0
    for s in activity.sets:
        if s.kind == "rest":
            rows.append(
                SetRow(None, "Rest", None, None, None, s.start_offset_s, s.duration_s, False)
            )
            continue
        number += 1
        exercise = None
        if s.exercise_category and s.exercise_category != "unknown":
            named = (s.exercise_name or s.exercise_category).replace("_", " ")
            exercise = named[:1].upper() + named[1:]
        rows.append(
            SetRow(
                number=number,
                movement=s.movement_name or "Movement",
                exercise=exercise,
                repetitions=s.repetitions,
                weight_kg=s.weight_kg,
                start_offset_s=s.start_offset_s,
                duration_s=s.duration_s,
                planned=s.source == "class_plan",
            )
        )
    return rows


def charts_and_sets(bundle: dict[str, Any]) -> tuple[WorkoutCharts, list[SetRow]]:
    """Parse a stored bundle once: its charts and its sets (raises ``ConversionError``)."""
    activity = parse_bundle(bundle)
    return charts_for(activity, bundle), set_rows(activity)
