"""Generator invariants over many seeds: shapes, units, and figures consistent with the series."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import InvalidInput
from service.peloton.sandbox import KINDS, generate_bundle
from service.peloton.sandbox.catalog import DEVICES, TIMEZONES

SPEED_KINDS = [k for k in KINDS if k.startswith(("cycling", "tread", "outdoor"))]
OUTDOOR_KINDS = [k for k in KINDS if k.startswith("outdoor")]
FLOOR_KINDS = ["strength", "yoga", "meditation"]
MPS = {"mph": 1609.344 / 3600, "kph": 1000 / 3600}
METRES = {"mi": 1609.344, "km": 1000.0, "m": 1.0}

seeds = st.integers(min_value=0, max_value=2**32)
kinds = st.sampled_from(KINDS)
units = st.sampled_from(["imperial", "metric"])


def _metrics(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {m["slug"]: m for m in graph["metrics"]}
    for metric in graph["metrics"]:
        for alt in metric.get("alternatives", []):
            out[alt["slug"]] = alt
    return out


def _summary(graph: dict[str, Any], slug: str) -> dict[str, Any]:
    return next(s for s in graph["summaries"] if s["slug"] == slug)


def _left_integral(offsets: list[int], values: list[float]) -> float:
    """Σ v·Δt holding each value until the next offset (1 s for the last)."""
    steps = [b - a for a, b in zip(offsets, offsets[1:], strict=False)] + [1]
    return math.fsum(v * dt for v, dt in zip(values, steps, strict=True))


def _trapezoid(offsets: list[int], values: list[float]) -> float:
    pairs = zip(
        zip(offsets, values, strict=True), zip(offsets[1:], values[1:], strict=False), strict=False
    )
    return math.fsum((b - a) * (va + vb) / 2 for (a, va), (b, vb) in pairs)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(seed=seeds, kind=kinds, user_units=units)
def test_workout_shape(seed: int, kind: str, user_units: str) -> None:
    bundle = generate_bundle(seed, kind, units=user_units)  # type: ignore[arg-type]
    workout, graph = bundle["workout"], bundle["performance_graph"]
    assert re.fullmatch(r"[0-9a-f]{32}", workout["id"])
    assert re.fullmatch(r"[0-9a-f]{32}", workout["user_id"])
    assert 5 <= workout["start_time"] - workout["created_at"] <= 61
    assert workout["status"] == "COMPLETE"
    assert workout["end_time"] == workout["start_time"] + graph["duration"]
    assert workout["timezone"] in {tz for tz, _ in TIMEZONES}
    assert workout["device_type"] in DEVICES
    assert workout["device_type_display_name"] == DEVICES[workout["device_type"]][0]
    assert workout["platform"] == DEVICES[workout["device_type"]][1]
    assert workout["workout_type"] in ("class", "freestyle", "scenic")
    ride = workout["ride"]
    if workout["workout_type"] == "freestyle":
        assert ride["id"] == "0" * 32
        assert re.fullmatch(r"\d+ (min|sec) Just (Ride|Run)", ride["title"])
        assert workout["title"] == ride["title"]
        assert bundle["ride_details"] is None
        assert graph["segment_list"] == []
    else:
        assert ride["duration"] == graph["duration"]
        assert bundle["ride_details"]["ride"]["id"] == ride["id"]
        segments = graph["segment_list"]
        planned = bundle["ride_details"]["segments"]["segment_list"]
        # The ride details add each segment's plan (strength movements) to the same segments.
        assert segments == [{k: v for k, v in s.items() if k != "subsegments_v2"} for s in planned]
        assert segments[0]["start_time_offset"] == 0
        for a, b in zip(segments, segments[1:], strict=False):
            assert b["start_time_offset"] == a["start_time_offset"] + a["length"]
        assert sum(s["length"] for s in segments) == ride["duration"]
    # JSON-serialisable without NaN/inf, and unchanged by a round trip.
    text = json.dumps(bundle, allow_nan=False)
    assert json.loads(text) == bundle


@settings(max_examples=120, deadline=None, derandomize=True)
@given(seed=seeds, kind=kinds, user_units=units)
def test_values_agree_with_max_and_average(seed: int, kind: str, user_units: str) -> None:
    graph = generate_bundle(seed, kind, units=user_units)["performance_graph"]  # type: ignore[arg-type]
    offsets = graph["seconds_since_pedaling_start"]
    assert offsets[0] in (0, 1, 2, 7)
    assert all(b > a for a, b in zip(offsets, offsets[1:], strict=False))
    assert offsets[-1] <= graph["duration"]
    metrics = _metrics(graph)
    for slug, metric in metrics.items():
        values = metric["values"]
        assert len(values) == len(offsets), slug
        present = [v for v in values if v is not None]
        if slug == "altitude":
            assert metric["max_value"] is None and metric["average_value"] is None
        elif slug in ("pace", "split_pace"):  # fastest pace is the "max"
            assert metric["max_value"] == min(present)
        elif slug == "heart_rate":
            beats = [v for v in values if v]
            assert metric["max_value"] == max(values)
            assert abs(metric["average_value"] - sum(beats) / len(beats)) <= 0.5
            assert metric["missing_data_duration"] == values.count(0)
            zones = metric["zones"]
            assert sum(z["duration"] for z in zones) == len(values)
            for a, b in zip(zones, zones[1:], strict=False):
                assert b["min_value"] == a["max_value"] + 1
        else:
            assert metric["max_value"] == max(present), slug
            tolerance = 0.05 if isinstance(metric["average_value"], float) else 0.5
            assert abs(metric["average_value"] - sum(present) / len(present)) <= tolerance + 1e-9
    if "speed" in metrics:
        speeds = metrics["speed"]["values"]
        mean_speed = sum(speeds) / len(speeds)
        if "pace" in metrics:
            assert metrics["pace"]["average_value"] == pytest.approx(60 / mean_speed, abs=0.006)
            for speed, pace in zip(speeds, metrics["pace"]["values"], strict=True):
                assert (pace is None) == (speed == 0)
    averages = {s["slug"]: s["value"] for s in graph["average_summaries"]}
    for slug, value in averages.items():
        assert metrics[slug.removeprefix("avg_")]["average_value"] == value


@settings(max_examples=150, deadline=None, derandomize=True)
@given(seed=seeds, kind=st.sampled_from(SPEED_KINDS), user_units=units)
def test_summary_distance_is_the_integral_of_speed(seed: int, kind: str, user_units: str) -> None:
    graph = generate_bundle(seed, kind, units=user_units)["performance_graph"]  # type: ignore[arg-type]
    offsets = graph["seconds_since_pedaling_start"]
    speed = _metrics(graph)["speed"]
    distance = _summary(graph, "distance")
    expected_unit = {"mph": "mi", "kph": "km"}[speed["display_unit"]]
    assert distance["display_unit"] == expected_unit
    assert speed["display_unit"] == ("mph" if user_units == "imperial" else "kph")
    integral = _left_integral(offsets, speed["values"]) / 3600
    # 0.5 %, or half the last published digit (two decimals) for very short workouts.
    assert abs(distance["value"] - integral) <= max(0.005 * integral, 0.005 + 1e-9)
    if graph["duration"] >= 600:
        trapezoid = _trapezoid(offsets, speed["values"]) / 3600
        assert abs(distance["value"] - trapezoid) <= 0.005 * trapezoid + 0.005


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=seeds)
def test_rower_distance_metres_and_split_pace(seed: int) -> None:
    graph = generate_bundle(seed, "rowing", units="imperial")["performance_graph"]
    offsets = graph["seconds_since_pedaling_start"]
    split = _metrics(graph)["split_pace"]
    assert split["display_unit"] == "min/500m"
    speeds = [500 / (v * 60) if v else 0.0 for v in split["values"]]
    distance = _summary(graph, "distance")
    assert distance["display_unit"] == "m"
    integral = _left_integral(offsets, speeds)
    assert abs(distance["value"] - integral) <= max(0.005 * integral, 0.5)
    assert _metrics(graph)["stroke_rate"]["display_unit"] == "spm"


@settings(max_examples=120, deadline=None, derandomize=True)
@given(seed=seeds, kind=kinds)
def test_total_work_matches_output(seed: int, kind: str) -> None:
    bundle = generate_bundle(seed, kind)
    graph, workout = bundle["performance_graph"], bundle["workout"]
    output = _metrics(graph).get("output")
    if output is None:
        assert workout["total_work"] == 0.0
        return
    assert _summary(graph, "total_output") == {
        "display_name": "Total Output",
        "display_unit": "kj",
        "value": round(workout["total_work"] / 1000),
        "slug": "total_output",
    }
    mean_power = sum(output["values"]) / len(output["values"])
    assert workout["total_work"] == pytest.approx(mean_power * graph["duration"], rel=0.01, abs=400)
    calories = _summary(graph, "calories")
    assert calories["display_unit"] == "kcal"
    assert (
        0.5 * workout["total_work"] / 1000
        <= calories["value"]
        <= 5 * workout["total_work"] / 1000 + 50
    )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=seeds, kind=st.sampled_from(OUTDOOR_KINDS), user_units=units)
def test_gps_track(seed: int, kind: str, user_units: str) -> None:
    bundle = generate_bundle(seed, kind, units=user_units)  # type: ignore[arg-type]
    graph = bundle["performance_graph"]
    assert bundle["workout"]["is_outdoor"] is True
    segments = graph["location_data"]
    coordinates = [c for s in segments for c in s["coordinates"]]
    samples = graph["seconds_since_pedaling_start"]
    assert len(coordinates) != len(samples)
    seconds = [c["seconds_offset_from_start"] for c in coordinates]
    assert all(b > a for a, b in zip(seconds, seconds[1:], strict=False))
    assert seconds[0] >= 0
    assert seconds[-1] <= graph["duration"]
    if graph["duration"] > 120:
        assert any(s["is_gap"] for s in segments)
    class_ids = {s["id"] for s in graph["segment_list"]}
    if class_ids:
        assert {s["segment_id"] for s in segments} <= class_ids
    units_seen = {c["distance_display_unit"] for c in coordinates}
    assert len(units_seen) == 1
    assert units_seen <= ({"mi"} if user_units == "imperial" else {"km", "m"})
    cumulative = [c["distance"] for c in coordinates]
    assert cumulative == sorted(cumulative)
    for c in coordinates:
        assert -90 <= c["latitude"] <= 90 and -180 <= c["longitude"] <= 180
        assert c["accuracy"] > 0
    summary = _summary(graph, "distance")
    last_m = cumulative[-1] * METRES[units_seen.pop()]
    assert last_m == pytest.approx(
        summary["value"] * METRES[summary["display_unit"]], rel=0.03, abs=20
    )
    altitude = _metrics(graph)["altitude"]
    assert altitude["display_unit"] == ("ft" if user_units == "imperial" else "m")
    assert _summary(graph, "elevation")["display_unit"] == altitude["display_unit"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("every_n", [2, 5, 7])
def test_every_n_samples_the_base_series(kind: str, every_n: int) -> None:
    base = generate_bundle(21, kind)["performance_graph"]
    graph = generate_bundle(21, kind, every_n=every_n)["performance_graph"]
    offsets = base["seconds_since_pedaling_start"]
    wanted = [i for i, t in enumerate(offsets) if (t - offsets[0]) % every_n == 0]
    assert graph["seconds_since_pedaling_start"] == [offsets[i] for i in wanted]
    for full, sampled in zip(base["metrics"], graph["metrics"], strict=True):
        assert sampled["values"] == [full["values"][i] for i in wanted]
        assert (sampled["max_value"], sampled["average_value"]) == (
            full["max_value"],
            full["average_value"],
        )
    assert graph["summaries"] == base["summaries"]
    assert graph["location_data"] == base["location_data"]


def test_no_dropped_seconds_means_an_exact_step() -> None:
    """Most workouts have no dropped samples: offsets step by exactly every_n."""
    exact = 0
    for seed in range(30):
        graph = generate_bundle(seed, "cycling_class", every_n=5)["performance_graph"]
        offsets = graph["seconds_since_pedaling_start"]
        if all(b - a == 5 for a, b in zip(offsets, offsets[1:], strict=False)):
            exact += 1
            assert len(offsets) == len(range(offsets[0], graph["duration"] + 1, 5))
    assert exact >= 15


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_json(kind: str) -> None:
    first = json.dumps(generate_bundle(99, kind, every_n=3))
    assert first == json.dumps(generate_bundle(99, kind, every_n=3))
    assert first != json.dumps(generate_bundle(100, kind, every_n=3))


@pytest.mark.parametrize("kind", KINDS)
def test_metric_and_imperial_units(kind: str) -> None:
    for user_units, speed, pace, dist, elev in (
        ("imperial", "mph", "min/mi", "mi", "ft"),
        ("metric", "kph", "min/km", "km", "m"),
    ):
        graph = generate_bundle(5, kind, units=user_units)["performance_graph"]  # type: ignore[arg-type]
        metrics = _metrics(graph)
        summaries = {s["slug"]: s["display_unit"] for s in graph["summaries"]}
        if "speed" in metrics:
            assert metrics["speed"]["display_unit"] == speed
            assert summaries["distance"] == dist
        if "pace" in metrics:
            assert metrics["pace"]["display_unit"] == pace
            assert [a["slug"] for a in metrics["pace"]["alternatives"]] == ["speed"]
        if "elevation" in summaries:
            assert summaries["elevation"] == elev
        if kind == "rowing":
            assert (summaries["distance"], metrics["split_pace"]["display_unit"]) == (
                "m",
                "min/500m",
            )


@pytest.mark.parametrize("kind", FLOOR_KINDS)
def test_floor_workouts_have_no_or_only_heart_rate_metrics(kind: str) -> None:
    with_hr = generate_bundle(1, kind, heart_rate=True)["performance_graph"]
    without = generate_bundle(1, kind, heart_rate=False)["performance_graph"]
    assert [m["slug"] for m in with_hr["metrics"]] == ["heart_rate"]
    assert without["metrics"] == []
    assert without["average_summaries"] == []
    assert [s["slug"] for s in without["summaries"]] == ["calories"]
    assert without["seconds_since_pedaling_start"]


def test_heart_rate_strap_pickup_and_standstill_nulls_occur() -> None:
    """Across seeds some workouts start with HR 0 and runs have null pace at standstill."""
    zero_start = null_pace = 0
    for seed in range(40):
        graph = generate_bundle(seed, "tread_run", heart_rate=True)["performance_graph"]
        metrics = _metrics(graph)
        zero_start += metrics["heart_rate"]["values"][0] == 0
        null_pace += metrics["pace"]["values"][0] is None
    assert zero_start >= 5
    assert null_pace == 40


def test_in_progress_bundle() -> None:
    bundle = generate_bundle(3, "cycling_class", in_progress=True, duration=1800)
    workout, graph = bundle["workout"], bundle["performance_graph"]
    assert (workout["status"], workout["end_time"]) == ("IN_PROGRESS", None)
    assert workout["ride"]["duration"] == 1800
    assert graph["duration"] == 600
    assert graph["seconds_since_pedaling_start"][-1] <= 600
    assert workout["total_work"] / 1000 == pytest.approx(
        _summary(graph, "total_output")["value"], abs=0.5
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "skydiving"}, "unknown workout kind 'skydiving'"),
        ({"kind": "yoga", "every_n": 0}, "every_n"),
        ({"kind": "yoga", "units": "furlongs"}, "units"),
        ({"kind": "yoga", "duration": 0}, "duration"),
        ({"kind": "outdoor_just_ride", "duration": 6 * 3600 + 1}, "duration must be 1..21600"),
        ({"kind": "yoga", "timezone": "Mars/Base"}, "timezone"),
    ],
)
def test_bad_arguments_raise_invalid_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        generate_bundle(1, **kwargs)


def test_a_five_hour_outdoor_ride_has_one_gps_point_a_second() -> None:
    bundle = generate_bundle(4, "outdoor_just_ride", duration=5 * 3600, units="metric")
    workout, graph = bundle["workout"], bundle["performance_graph"]
    assert (workout["fitness_discipline"], workout["is_outdoor"]) == ("cycling", True)
    assert workout["end_time"] - workout["start_time"] == 5 * 3600
    points = [c for s in graph["location_data"] for c in s["coordinates"]]
    assert len(points) > 5 * 3600 * 0.95
    distance = _summary(graph, "distance")
    assert distance["display_unit"] in ("km", "m")
    km = distance["value"] / (1000 if distance["display_unit"] == "m" else 1)
    assert 5 * 12 * 1.6 * 0.8 < km < 5 * 18.5 * 1.6  # a ride's speed, not a run's
