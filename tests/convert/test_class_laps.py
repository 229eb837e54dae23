"""Laps that follow the class: instructor cues and target metrics cut the segment laps."""

from __future__ import annotations

from typing import Any

import pytest

from service.convert.fit import dump_fit
from service.convert.json_format import dump_json
from service.convert.model import Activity, Target
from service.convert.peloton import parse_bundle
from service.convert.tcx import dump_tcx
from tests.convert.bundles import make_bundle, metric, segment, summary
from tests.convert.fitcheck import decode
from tests.convert.xsd import validate_tcx

LEAD = 60  # class video seconds before the workout's time starts


def cue(
    start: int, end: int, cadence: tuple[int, int] | None, resistance: tuple[int, int] | None
) -> dict[str, Any]:
    """An instructor cue in class-video time (offsets from the video's start)."""
    out: dict[str, Any] = {"offsets": {"start": start + LEAD, "end": end + LEAD - 1}}
    if cadence:
        out["cadence_range"] = {"lower": cadence[0], "upper": cadence[1]}
    if resistance:
        out["resistance_range"] = {"lower": resistance[0], "upper": resistance[1]}
    return out


# A 30-minute class: warmup 0-300, main 300-1680, cool down 1680-1800.
SEGMENTS = [
    segment("Warmup", 0, 300),
    segment("Cycling", 300, 1380),
    segment("Cool Down", 1680, 120),
]
CUES = [
    cue(60, 300, (80, 90), (25, 35)),
    cue(300, 420, (90, 100), (35, 45)),  # crosses nothing, starts at the segment edge
    cue(420, 480, (70, 80), (50, 60)),
    cue(480, 660, (70, 80), (50, 60)),  # same targets as the cue before: one lap
    cue(700, 820, (100, 110), (30, 40)),  # a gap 660-700 before it
    cue(1620, 1740, (80, 90), None),  # crosses into the cool down
]


def ride(details: dict[str, Any] | None, duration: int = 1800, **kw: Any) -> dict[str, Any]:
    offsets = list(range(1, duration + 1))
    return make_bundle(
        offsets=offsets,
        metrics=[
            metric("output", "watts", [150.0] * len(offsets)),
            metric("cadence", "rpm", [85.0] * len(offsets)),
            metric("speed", "mph", [18.0] * len(offsets)),
        ],
        summaries=[summary("distance", "mi", 9.0), summary("calories", "kcal", 301)],
        segments=SEGMENTS,
        duration=duration,
        ride_details=details,
        **kw,
    )


def details(cues: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "ride": {"id": "f" * 32, "pedaling_start_offset": LEAD},
        "segments": {"segment_list": SEGMENTS},
        "instructor_cues": cues or [],
        **extra,
    }


def spans(act: Activity) -> list[tuple[str | None, float, float, list[Target]]]:
    return [(lap.name, lap.start_offset_s, lap.stats.duration_s, lap.targets) for lap in act.laps]


def t(metric: str, lower: float, upper: float) -> Target:
    return Target(metric=metric, lower=lower, upper=upper)  # type: ignore[arg-type]


def test_laps_follow_the_cues_inside_the_segments() -> None:
    act = parse_bundle(ride(details(CUES)))
    assert spans(act) == [
        ("Warmup", 0, 60, []),
        ("Warmup", 60, 240, [t("cadence", 80, 90), t("resistance", 25, 35)]),
        ("Cycling", 300, 120, [t("cadence", 90, 100), t("resistance", 35, 45)]),
        ("Cycling", 420, 240, [t("cadence", 70, 80), t("resistance", 50, 60)]),
        ("Cycling", 660, 40, []),
        ("Cycling", 700, 120, [t("cadence", 100, 110), t("resistance", 30, 40)]),
        ("Cycling", 820, 800, []),
        ("Cycling", 1620, 60, [t("cadence", 80, 90)]),
        ("Cool Down", 1680, 60, [t("cadence", 80, 90)]),
        ("Cool Down", 1740, 60, []),
    ]


def test_totals_still_agree() -> None:
    plain, cued = parse_bundle(ride(details())), parse_bundle(ride(details(CUES)))
    assert len(plain.laps) == 3 and len(cued.laps) == 10
    for act in (plain, cued):
        assert sum(lap.stats.duration_s for lap in act.laps) == act.summary.duration_s
        assert sum(lap.stats.calories_kcal or 0 for lap in act.laps) == 301
        assert sum(lap.stats.distance_m or 0 for lap in act.laps) == pytest.approx(
            act.summary.distance_m
        )
    assert cued.summary == plain.summary


def test_without_cues_the_segment_laps_stay() -> None:
    for extra in (details(), None, details([{"offsets": None}, {"nothing": 1}, "x"])):
        act = parse_bundle(ride(extra))
        assert [(lap.name, lap.start_offset_s) for lap in act.laps] == [
            ("Warmup", 0),
            ("Cycling", 300),
            ("Cool Down", 1680),
        ]
        assert all(lap.targets == [] for lap in act.laps)


def test_target_metrics_of_the_ride_details_and_of_the_graph() -> None:
    interval = {
        "offsets": {"start": 360, "end": 479},
        "segment_type": "power_zone",
        "metrics": [
            {"name": "power_zone", "lower": 4, "upper": 4},
            {"name": "speed", "lower": 5, "upper": 6},  # no unit given: not guessed
        ],
    }
    in_details = details(target_metrics_performance_data={"target_metrics": [interval]})
    act = parse_bundle(ride(in_details))
    assert [(lap.start_offset_s, lap.targets) for lap in act.laps if lap.targets] == [
        (300, [t("power_zone", 4, 4)])  # video time 360 is workout time 300
    ]
    graph = ride(details())
    graph["performance_graph"]["target_metrics_performance_data"] = {
        "target_metrics": [interval],
        "time_in_metric": [],
    }
    act = parse_bundle(graph)  # the graph's offsets are workout time already
    assert [(lap.start_offset_s, lap.targets) for lap in act.laps if lap.targets] == [
        (360, [t("power_zone", 4, 4)])
    ]
    steps = decode(dump_fit(act)).all("workout_step")
    zone = next(s for s in steps if s["target_type"] == "power")
    assert zone["target_power_zone"] == 4 and zone["wkt_step_name"] == "Cycling · zone 4"
    assert {s["target_type"] for s in steps} == {"power", "open"}


def test_cues_after_an_early_stop_are_dropped() -> None:
    act = parse_bundle(ride(details(CUES), duration=500))
    assert [lap.start_offset_s for lap in act.laps] == [0, 60, 300, 420]
    assert sum(lap.stats.duration_s for lap in act.laps) == 500


def test_fit_laps_point_at_workout_steps_with_the_targets() -> None:
    act = parse_bundle(ride(details(CUES)))
    fit = decode(dump_fit(act))
    laps, steps = fit.all("lap"), fit.all("workout_step")
    assert len(laps) == len(steps) == len(act.laps)
    assert fit.one("workout")["num_valid_steps"] == len(act.laps)
    for lap, step, model in zip(laps, steps, act.laps, strict=True):
        assert steps[lap["wkt_step_index"]] is step
        assert step["duration_time"] == pytest.approx(model.stats.duration_s)
        cadence = next((x for x in model.targets if x.metric == "cadence"), None)
        if cadence:
            assert step["target_type"] == "cadence"
            assert step["custom_target_cadence_low"] == cadence.lower
            assert step["custom_target_cadence_high"] == cadence.upper
        else:
            assert step["target_type"] == "open"
        assert step["wkt_step_name"] == model.label()
    assert steps[0]["intensity"] == "warmup" and steps[-1]["intensity"] == "cooldown"
    assert fit.one("session")["num_laps"] == 10
    assert sum(lap["total_elapsed_time"] for lap in laps) == act.summary.duration_s
    assert sum(lap["total_calories"] for lap in laps) == fit.one("session")["total_calories"]
    plain = decode(dump_fit(parse_bundle(ride(details()))))
    assert "workout_step" not in plain.sdk and "wkt_step_index" not in plain.all("lap")[0]


def test_tcx_laps_validate_and_name_their_targets() -> None:
    data = dump_tcx(parse_bundle(ride(details(CUES))))
    validate_tcx(data)
    assert data.count(b"<Lap ") == 10
    assert "<Notes>Warmup · cadence 80-90 rpm · resistance 25-35%</Notes>".encode() in data


def test_json_round_trip_and_determinism() -> None:
    bundle = ride(details(CUES))
    act = parse_bundle(bundle)
    assert Activity.model_validate_json(dump_json(act)).laps == act.laps
    assert dump_fit(parse_bundle(bundle)) == dump_fit(act)
    assert dump_tcx(parse_bundle(bundle)) == dump_tcx(act)


def test_cue_edges_a_hair_from_a_segment_edge_make_no_sliver_laps() -> None:
    cues = [
        cue(0, 302, (80, 90), None),  # ends 2 s into the main segment
        cue(304, 600, (90, 100), None),  # after a 2 s gap: no lap for the gap
        cue(600, 1677, (70, 80), None),  # ends 3 s before the cool down
        cue(1677, 1797, (60, 70), None),  # its last 3 s are no lap either
    ]
    act = parse_bundle(ride(details(cues)))
    assert spans(act) == [
        ("Warmup", 0, 300, [t("cadence", 80, 90)]),
        ("Cycling", 300, 300, [t("cadence", 90, 100)]),
        ("Cycling", 600, 1080, [t("cadence", 70, 80)]),
        ("Cool Down", 1680, 120, [t("cadence", 60, 70)]),
    ]


def test_legacy_per_second_targets_cut_laps_where_the_cadence_range_changes() -> None:
    def graph(kind: str, runs: list[tuple[int, int | None, int | None]]) -> dict[str, Any]:
        lower = [lo for n, lo, _ in runs for _ in range(n)]
        upper = [hi for n, _, hi in runs for _ in range(n)]
        return {"type": kind, "graph_data": {"lower": lower, "upper": upper, "average": []}}

    bundle = ride(details())
    bundle["performance_graph"]["target_performance_metrics"] = {
        "target_graph_metrics": [
            graph(
                "cadence", [(60, 0, 0), (240, 80, 90), (3, 60, 70), (297, 90, 100), (1200, 70, 80)]
            ),
            graph("resistance", [(300, 30, 40), (100, 40, 50), (1400, 45, 55)]),
            {"type": "cadence", "graph_data": {"lower": "garbage"}},  # dropped, not fatal
        ],
        "cadence_time_in_range": 60,
    }
    act = parse_bundle(bundle)
    assert spans(act) == [
        ("Warmup", 0, 60, [t("resistance", 30, 40)]),  # cadence 0-0: no cadence target
        ("Warmup", 60, 240, [t("cadence", 80, 90), t("resistance", 30, 40)]),
        # the 3 s run at 300 is rounding: this lap takes the range that holds its middle
        ("Cycling", 300, 300, [t("cadence", 90, 100)]),  # resistance changes inside: left out
        ("Cycling", 600, 1080, [t("cadence", 70, 80), t("resistance", 45, 55)]),
        ("Cool Down", 1680, 120, [t("cadence", 70, 80), t("resistance", 45, 55)]),
    ]
    validate_tcx(dump_tcx(act))
    assert len(decode(dump_fit(act)).all("workout_step")) == 5
