"""The sandbox's class plans: strength movements (tracked and plan only) and class cues."""

from __future__ import annotations

import pytest

from service.convert.exercises import load_exercise_map
from service.convert.fit import dump_fit
from service.convert.peloton import parse_bundle
from service.convert.tcx import dump_tcx
from service.peloton.sandbox import generate_bundle
from service.peloton.sandbox.plan import HOLDS, STRENGTH_MOVEMENTS, WARMUP_MOVEMENTS
from tests.convert.fitcheck import decode
from tests.convert.xsd import validate_tcx


def test_every_sandbox_movement_has_a_garmin_exercise() -> None:
    table = load_exercise_map()
    for name in [n for n, _ in STRENGTH_MOVEMENTS] + list(WARMUP_MOVEMENTS):
        assert table.lookup(None, name).category != "unknown", name


def test_strength_workouts_come_in_both_shapes() -> None:
    sources: dict[str, int] = {}
    for seed in range(12):
        bundle = generate_bundle(seed, "strength")
        tracker = bundle["workout"]["movement_tracker_data"]
        plan = [
            sub
            for seg in bundle["ride_details"]["segments"]["segment_list"]
            for sub in seg["subsegments_v2"]
        ]
        assert plan and all(sub["length"] > 0 for sub in plan)
        act = parse_bundle(bundle)
        assert act.sets and all(
            s.exercise_category != "unknown" for s in act.sets if s.movement_name
        )
        source = "tracked" if tracker else "class_plan"
        assert {s.source for s in act.sets} == {source}
        sources[source] = sources.get(source, 0) + 1
        if tracker:
            items = tracker["completed_movements_summary_data"]["repetition_summary_data"]
            for item in items:
                hold = item["movement_name"] in HOLDS
                assert (item["completed_reps"] is None) is hold
                assert item["weight"][0]["weight_data"]["weight_unit"] in ("lb", "kg")
            active = [s for s in act.sets if s.kind == "active"]
            assert [s.movement_name for s in active] == [i["movement_name"] for i in items]
        # Sets stay inside the workout and in order.
        ends = [s.start_offset_s + s.duration_s for s in act.sets]
        assert ends[-1] <= act.summary.duration_s
        assert all(b.start_offset_s >= a for a, b in zip(ends, act.sets[1:], strict=False))
    assert sources.keys() == {"tracked", "class_plan"}


def test_an_in_progress_workout_tracks_only_what_is_done() -> None:
    seed = next(
        s for s in range(20) if generate_bundle(s, "strength")["workout"]["movement_tracker_data"]
    )
    done = generate_bundle(seed, "strength", in_progress=True)
    items = done["workout"]["movement_tracker_data"]["completed_movements_summary_data"][
        "repetition_summary_data"
    ]
    assert all(i["offset"] < done["performance_graph"]["duration"] for i in items)


@pytest.mark.parametrize(
    ("kind", "metric"), [("cycling_class", "cadence"), ("tread_run", "incline")]
)
def test_classes_carry_cues_and_the_laps_follow_them(kind: str, metric: str) -> None:
    bundle = generate_bundle(5, kind, duration=1800)
    act = parse_bundle(bundle)
    segments = bundle["performance_graph"]["segment_list"]
    assert len(act.laps) > len(segments)
    assert all(any(t.metric == metric for t in lap.targets) for lap in act.laps[1:-1])
    assert sum(lap.stats.duration_s for lap in act.laps) == act.summary.duration_s
    validate_tcx(dump_tcx(act))
    fit = decode(dump_fit(act))
    assert len(fit.all("lap")) == len(act.laps)
    assert (
        sum(lap["total_calories"] for lap in fit.all("lap")) == fit.one("session")["total_calories"]
    )


def test_other_kinds_have_no_cues_or_sets() -> None:
    for kind in ("yoga", "cycling_scenic", "outdoor_run", "cycling_just_ride"):
        act = parse_bundle(generate_bundle(2, kind))
        assert act.sets == [] and all(lap.targets == [] for lap in act.laps)
