"""FIT messages for what the class asked for: strength ``set`` and ``exercise_title`` messages,
and ``workout`` / ``workout_step`` messages for laps with class targets.

Strength: one ``set`` per model set (``active`` with repetitions, weight in kg, duration and
the Garmin exercise; ``rest`` between), as a watch records them, so Garmin Connect and other
readers list sets and reps. Each distinct movement gets an ``exercise_title`` whose
``message_index`` is the sets' ``wkt_step_index``: that is where readers find the movement's
own name, which matters most for a movement with the ``unknown`` category.

Targets: one ``workout_step`` per lap (``lap.wkt_step_index`` points at it), timed by the lap,
with its cadence range (or power zone) as the step target, the way peloton-to-garmin writes
class targets; the step name carries every target in words.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from service.convert.exercises import CATEGORY_NUMBERS, exercise_number
from service.convert.fit_profile import clean, fit_string, fit_time
from service.convert.model import Activity, Lap, StrengthSet


def _title_key(s: StrengthSet) -> tuple[str, str | None, str | None]:
    return (s.exercise_category or "unknown", s.exercise_name, s.movement_name)


def set_messages(activity: Activity) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``set`` messages and the ``exercise_title`` messages (both empty without sets)."""
    titles: dict[tuple[str, str | None, str | None], int] = {}
    sets = []
    for index, s in enumerate(activity.sets):
        end = s.start + timedelta(seconds=s.duration_s)
        values: dict[str, Any] = {
            "message_index": index,
            "timestamp": fit_time(end, f"set {index} end"),
            "start_time": fit_time(s.start, f"set {index} start"),
            "duration": s.duration_s,
            "set_type": s.kind,
        }
        if s.kind == "active":
            key = _title_key(s)
            step = titles.setdefault(key, len(titles))
            category = key[0] if key[0] in CATEGORY_NUMBERS else "unknown"
            number = exercise_number(category, s.exercise_name) if s.exercise_name else None
            weight = s.weight_kg if s.weight_kg else None  # 0 is body weight: no weight field
            values |= {
                "repetitions": s.repetitions,
                "weight": weight,
                "weight_display_unit": "kilogram" if weight is not None else None,
                "category": [category],
                "category_subtype": None if number is None else [number],
                "wkt_step_index": step,
            }
        sets.append(clean("set", values))
    exercise_titles = []
    for (category, name, movement), step in titles.items():
        number = exercise_number(category, name) if name else None
        title = movement or (name or category).replace("_", " ").capitalize()
        exercise_titles.append(
            clean(
                "exercise_title",
                {
                    "message_index": step,
                    "exercise_category": category if category in CATEGORY_NUMBERS else "unknown",
                    "exercise_name": number,
                    "wkt_step_name": fit_string(title, 31),
                },
            )
        )
    return sets, exercise_titles


def has_steps(activity: Activity) -> bool:
    """Whether the laps get workout steps: some lap has targets, and no sets use step indexes."""
    return not activity.sets and any(lap.targets for lap in activity.laps)


def _step_target(lap: Lap) -> dict[str, Any]:
    by_metric = {t.metric: t for t in lap.targets}
    cadence = by_metric.get("cadence")
    if cadence is not None and (cadence.lower is not None or cadence.upper is not None):
        lo = cadence.lower if cadence.lower is not None else cadence.upper
        hi = cadence.upper if cadence.upper is not None else cadence.lower
        return {
            "target_type": "cadence",
            "target_value": 0,  # 0: the custom range below
            "custom_target_value_low": lo,
            "custom_target_value_high": hi,
        }
    zone = by_metric.get("power_zone")
    value = None if zone is None else (zone.lower if zone.lower is not None else zone.upper)
    if value is not None and 1 <= value <= 7:
        return {"target_type": "power", "target_value": round(value)}
    return {"target_type": "open"}


def _intensity(lap: Lap) -> str:
    name = (lap.name or "").casefold()
    if "warm" in name:
        return "warmup"
    if "cool" in name:
        return "cooldown"
    return "active"


def step_messages(
    activity: Activity, sport: str, sub_sport: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``workout`` and one ``workout_step`` per lap (call only when :func:`has_steps`)."""
    laps = activity.laps
    workout = clean(
        "workout",
        {
            "sport": sport,
            "sub_sport": sub_sport,
            "num_valid_steps": len(laps),
            "wkt_name": fit_string(activity.title, 63),
        },
    )
    steps = []
    for index, lap in enumerate(laps):
        steps.append(
            clean(
                "workout_step",
                {
                    "message_index": index,
                    "wkt_step_name": fit_string(lap.label() or f"Step {index + 1}", 63),
                    "duration_type": "time",
                    "duration_value": round(lap.stats.duration_s * 1000),  # milliseconds
                    **_step_target(lap),
                    "intensity": _intensity(lap),
                },
            )
        )
    return workout, steps
