"""What a sandbox class asks for: strength movements, instructor cues, tread targets.

Shapes follow Peloton's: a strength class's plan is ``segments.segment_list[].subsegments_v2[]``
(each with ``length`` and ``movements[{id, name}]``) in the ride details; a rep-tracked
workout carries ``movement_tracker_data.completed_movements_summary_data
.repetition_summary_data[]`` (``offset`` from the workout's start, ``length``, reps, weight);
cycling classes carry ``instructor_cues[]`` (``offsets{start,end}`` in class-video time, which
starts ``pedaling_start_offset`` seconds before the workout, ``end`` the last second, with
cadence and resistance ranges); tread classes carry
``target_metrics_performance_data.target_metrics[]`` (same offsets, ``metrics[{name, lower,
upper}]``). Everything derives from the ride's (or workout's) id, so the same seed gives the
same JSON. Movement names are the sandbox's catalogue; each has a Garmin exercise in
``service/convert/data/strength_exercises.json`` (a test checks it).
"""

from __future__ import annotations

import random
from typing import Any

from service.peloton.sandbox.specs import RideSpec, WorkoutSpec, derive, rng_for

#: (name, weighted): the sandbox's strength catalogue.
STRENGTH_MOVEMENTS: tuple[tuple[str, bool], ...] = (
    ("Goblet Squat", True), ("Reverse Lunge", True), ("Romanian Deadlift", True),
    ("Bent Over Row", True), ("Overhead Press", True), ("Chest Press", True),
    ("Bicep Curl", True), ("Hammer Curl", True), ("Skull Crusher", True),
    ("Lateral Raise", True), ("Glute Bridge", False), ("Push Up", False),
    ("Forearm Plank", False), ("Side Plank", False), ("Bicycle Crunch", False),
    ("Russian Twist", True), ("Mountain Climber", False), ("Thruster", True),
)  # fmt: skip
#: Movements a strength class's warmup is made of.
WARMUP_MOVEMENTS = ("Arm Circles", "Hip Circles", "Inchworm", "Bodyweight Squat")
#: Movements held for time rather than counted.
HOLDS = frozenset({"Forearm Plank", "Side Plank"})
REST = "Rest"
#: Shortest piece of a plan: a shorter remainder joins the piece before it.
MIN_PIECE_S = 15


def _movement_id(name: str) -> str:
    return f"{derive('movement', name):016x}" * 2


def _subsegment(ride: RideSpec, at: int, length: int, names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "id": f"{derive(ride.ride_id, 'sub', at):016x}" * 2,
        "type": "rest" if names == (REST,) else "exercise",
        "display_name": " + ".join(names),
        "length": length,
        "rounds": 1,
        "movements": [{"id": _movement_id(n), "name": n} for n in names],
    }


def subsegments(ride: RideSpec, name: str, start: int, length: int) -> list[dict[str, Any]]:
    """A strength segment's plan: work then rest, to its end (cool downs have no movements)."""
    if ride.spec.fitness_discipline != "strength" or name == "Cool Down":
        return []
    rng = rng_for(ride.ride_id, "plan", start)
    out: list[dict[str, Any]] = []
    at, end = start, start + length
    while at < end:
        if name == "Warmup":
            names: tuple[str, ...] = (rng.choice(WARMUP_MOVEMENTS),)
            work = 30
        else:
            pair = rng.random() < 0.2  # a superset: two movements share the block
            chosen = rng.sample(STRENGTH_MOVEMENTS, 2 if pair else 1)
            names = tuple(n for n, _ in chosen)
            work = rng.choice((40, 45, 60)) * len(names)
        if end - (at + work) < MIN_PIECE_S:
            work = end - at  # no sliver of a movement at the segment's end
        out.append(_subsegment(ride, at, work, names))
        at += work
        rest = rng.choice((15, 20, 30))
        if end - (at + rest) < MIN_PIECE_S:
            rest = end - at
        if rest > 0 and name != "Warmup":
            out.append(_subsegment(ride, at, rest, (REST,)))
            at += rest
    return out


def is_tracked(spec: WorkoutSpec) -> bool:
    """Whether Peloton counted this strength workout's reps (about two in three)."""
    return spec.spec.fitness_discipline == "strength" and derive(spec.seed, "tracked") % 3 != 0


def movement_tracker(spec: WorkoutSpec) -> dict[str, Any] | None:
    """``movement_tracker_data`` of a tracked workout: a set per planned movement done so far."""
    if not is_tracked(spec):
        return None
    rng = rng_for(spec.seed, "reps")
    imperial = spec.user.units == "imperial"
    weighted = dict(STRENGTH_MOVEMENTS)
    items = []
    for segment in spec.ride.segments:
        at = segment.start  # subsegments are laid end to end from the segment's start
        for sub in subsegments(spec.ride, segment.name, segment.start, segment.length):
            moves = sub["movements"]
            share = sub["length"] // max(len(moves), 1)
            for i, move in enumerate(moves):
                offset = at + i * share
                if move["name"] != REST and offset < spec.recorded:
                    items.append(_tracked(move, offset, share, rng, imperial, weighted))
            at += sub["length"]
    return {"completed_movements_summary_data": {"repetition_summary_data": items}}


def _tracked(
    move: dict[str, Any],
    offset: int,
    length: int,
    rng: random.Random,
    imperial: bool,
    weighted: dict[str, bool],
) -> dict[str, Any]:
    hold = move["name"] in HOLDS
    kg = rng.choice((4, 6, 8, 10, 12, 15)) if weighted.get(move["name"]) else 0
    value = round(kg * 2.2046 / 5) * 5 if imperial and kg else kg
    return {
        "movement_id": move["id"],
        "movement_name": move["name"],
        "is_hold": hold,
        "tracking_type": "time_based" if hold else "rep_counting",
        "completed_reps": None if hold else rng.randint(6, 16),
        "completed_duration": length - rng.randint(0, 3) if hold else None,
        "offset": offset,
        "length": length,
        "weight": [
            {
                "weight_category": "medium" if kg else "bodyweight",
                "weight_data": {"weight_value": value, "weight_unit": "lb" if imperial else "kg"},
            }
        ],
    }


def _blocks(ride: RideSpec, tag: str) -> list[tuple[int, int, random.Random]]:
    """(start, end, rng) blocks of 30 to 180 s over the class, in workout seconds.

    Blocks lie inside the class's segments, as an instructor's cues do: a block never spans a
    segment edge, and the last block of a segment takes a remainder under 30 s rather than
    leaving a sliver.
    """
    rng = rng_for(ride.ride_id, tag)
    blocks: list[tuple[int, int, random.Random]] = []
    edges = sorted({0, ride.duration, *(s.start for s in ride.segments if s.start > 0)})
    for first, last in zip(edges, edges[1:], strict=False):
        at = first
        while at < last:
            length = min(rng.choice((30, 60, 60, 90, 120, 180)), last - at)
            if last - (at + length) < 30:
                length = last - at
            blocks.append((at, at + length, rng))
            at += length
    return blocks


def instructor_cues(ride: RideSpec) -> list[dict[str, Any]]:
    """Cadence and resistance ranges for a cycling class (none for other kinds)."""
    if ride.spec.series != "bike" or ride.spec.workout_type != "class":
        return []
    lead = ride.spec.pedaling_start_offset
    cues = []
    for start, end, rng in _blocks(ride, "cues"):
        cadence = rng.randrange(60, 105, 5)
        resistance = rng.randrange(25, 60, 5)
        cues.append(
            {
                "offsets": {"start": start + lead, "end": end + lead - 1},
                "cadence_range": {"lower": cadence, "upper": cadence + 10},
                "resistance_range": {"lower": resistance, "upper": resistance + 10},
            }
        )
    return cues


def target_metrics(ride: RideSpec) -> dict[str, Any] | None:
    """Incline and speed targets for a tread class (``None`` for other kinds)."""
    if ride.spec.series != "tread":
        return None
    lead = ride.spec.pedaling_start_offset
    intervals = []
    for start, end, rng in _blocks(ride, "targets"):
        incline = rng.randrange(0, 8)
        speed = round(rng.uniform(3.0, 8.0), 1)
        intervals.append(
            {
                "offsets": {"start": start + lead, "end": end + lead - 1},
                "segment_type": "running",
                "metrics": [
                    {"name": "incline", "lower": incline, "upper": incline + 1},
                    {"name": "speed", "lower": speed, "upper": round(speed + 0.5, 1)},
                ],
            }
        )
    return {"target_metrics": intervals, "time_in_metric": []}
