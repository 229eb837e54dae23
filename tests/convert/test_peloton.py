"""The Peloton bundle parser: times, units, nulls, GPS join, distance, laps and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from service.convert.model import Discipline
from service.convert.peloton import parse_bundle
from service.convert.units import METRES_PER_FOOT, METRES_PER_MILE
from service.errors import ConversionError
from tests.convert.bundles import (
    START,
    coordinates,
    make_bundle,
    metric,
    segment,
    summary,
)

T0 = datetime.fromtimestamp(START, tz=UTC)
MPH = METRES_PER_MILE / 3600


def test_sample_time_is_start_plus_offset_not_index() -> None:
    offsets = [7.0, 12.0, 17.0, 22.0]
    b = make_bundle(offsets=offsets, metrics=[metric("output", "watts", [100, 110, 120, 130])])
    act = parse_bundle(b)
    assert [s.time for s in act.samples] == [T0 + timedelta(seconds=o) for o in offsets]
    assert [s.power for s in act.samples] == [100, 110, 120, 130]
    assert act.source.every_n == 5
    assert act.start == T0
    assert act.start.tzinfo is not None and act.start.utcoffset() == timedelta(0)


def test_speed_units_are_exact() -> None:
    mph = parse_bundle(make_bundle(offsets=[1, 2], metrics=[metric("speed", "mph", [10.0, 20.0])]))
    assert mph.samples[0].speed == pytest.approx(10 * 1609.344 / 3600, rel=1e-12)
    kph = parse_bundle(make_bundle(offsets=[1, 2], metrics=[metric("speed", "kph", [36.0, 18.0])]))
    assert [s.speed for s in kph.samples] == pytest.approx([10.0, 5.0], rel=1e-12)


def test_pace_prefers_speed_alternative_and_inverts_otherwise() -> None:
    alt = metric("speed", "mph", [6.0, 7.5])
    pace = metric("pace", "min/mi", [10.0, 8.0], alternatives=[alt])
    act = parse_bundle(make_bundle(offsets=[1, 2], metrics=[pace], discipline="running"))
    assert [s.speed for s in act.samples] == pytest.approx([6.0 * MPH, 7.5 * MPH])
    bare = metric("pace", "min/km", [5.0, None])
    act = parse_bundle(make_bundle(offsets=[1, 2], metrics=[bare], discipline="running"))
    assert act.samples[0].speed == pytest.approx(1000 / 300)
    assert act.samples[1].speed is None  # standstill pace is null: not recorded, not zero


def test_rowing_stroke_rate_is_cadence_and_split_pace_is_speed() -> None:
    metrics = [
        metric("output", "watts", [150, 160]),
        metric("stroke_rate", "spm", [24, 26]),
        metric("split_pace", "min/500m", [2.0, 1.75]),
    ]
    act = parse_bundle(make_bundle(offsets=[1, 2], metrics=metrics, discipline="caesar"))
    assert act.discipline is Discipline.ROWING
    assert [s.cadence for s in act.samples] == [24, 26]
    assert [s.speed for s in act.samples] == pytest.approx([500 / 120, 500 / 105])


def test_null_and_zero_heart_rate_are_omitted_only_for_that_metric() -> None:
    metrics = [
        metric("heart_rate", "bpm", [0, 0, 121, None, 125]),
        metric("output", "watts", [50, None, 70, 80, 90]),
    ]
    act = parse_bundle(make_bundle(offsets=[1, 2, 3, 4, 5], metrics=metrics))
    assert [s.heart_rate for s in act.samples] == [None, None, 121, None, 125]
    assert [s.power for s in act.samples] == [50, None, 70, 80, 90]


def test_distance_is_integrated_over_real_offsets_and_matches_summary() -> None:
    offsets = [float(o) for o in range(5, 605, 5)]  # every_n=5 starting at 5
    speeds: list[float | None] = [20.0] * len(offsets)
    summaries = [summary("distance", "mi", round(20 * 600 / 3600, 2))]
    act = parse_bundle(
        make_bundle(offsets=offsets, metrics=[metric("speed", "mph", speeds)], summaries=summaries)
    )
    dists = [s.distance for s in act.samples]
    assert all(d is not None for d in dists)
    assert dists == sorted(dists)  # type: ignore[type-var]
    total = summaries[0]["value"] * METRES_PER_MILE
    assert dists[-1] == pytest.approx(total, rel=1e-9)
    assert act.summary.distance_m == pytest.approx(total)
    # Shape follows the real offsets: the first sample already covers 5 s of riding.
    assert dists[0] == pytest.approx(total * 5 / 600, rel=1e-9)


def test_distance_without_summary_is_the_integral() -> None:
    act = parse_bundle(
        make_bundle(offsets=[2, 4, 6], metrics=[metric("speed", "kph", [36.0, 36.0, 36.0])])
    )
    assert [s.distance for s in act.samples] == pytest.approx([20.0, 40.0, 60.0])
    assert act.summary.distance_m == pytest.approx(60.0)


def test_gps_is_joined_on_offsets_not_positions() -> None:
    offsets = [1.0, 2.0, 3.0, 4.0]
    alt = metric("altitude", "ft", [100, 101, 102, 103])
    hr = metric("heart_rate", "bpm", [100, 101, 102, 103])
    # One extra coordinate (2.5) that no sample has, and sample 4 without a coordinate.
    pts = [(1.0, 40.0, -73.0), (2.0, 40.1, -73.1), (2.5, 40.15, -73.15), (3.0, 40.2, -73.2)]
    loc = [{"segment_id": "s1", "is_gap": False, "coordinates": coordinates(pts)}]
    act = parse_bundle(
        make_bundle(offsets=offsets, metrics=[alt, hr], location_data=loc, discipline="running")
    )
    by_offset = {s.offset_s: s for s in act.samples}
    assert sorted(by_offset) == [1.0, 2.0, 2.5, 3.0, 4.0]
    assert (by_offset[2.0].latitude, by_offset[2.0].longitude) == (40.1, -73.1)
    assert by_offset[2.0].heart_rate == 101
    assert by_offset[2.0].altitude == pytest.approx(101 * METRES_PER_FOOT)
    extra = by_offset[2.5]
    assert (extra.latitude, extra.heart_rate, extra.altitude) == (40.15, None, None)
    assert by_offset[4.0].latitude is None and by_offset[4.0].heart_rate == 103
    assert act.has_gps and act.is_outdoor


def test_gap_segments_split_the_track_and_give_no_positions() -> None:
    offsets = [float(o) for o in range(1, 10)]
    loc = [
        {
            "is_gap": False,
            "coordinates": coordinates([(o, 40 + o / 100, -73.0) for o in (1, 2, 3)]),
        },
        {"is_gap": True, "coordinates": coordinates([(o, 41.0, -74.0) for o in (4, 5)])},
        {"is_gap": False, "coordinates": coordinates([(o, 40 + o / 100, -73.0) for o in (6, 7)])},
    ]
    act = parse_bundle(make_bundle(offsets=offsets, location_data=loc, discipline="walking"))
    segs = {s.offset_s: s.track_segment for s in act.samples}
    assert [segs[o] for o in (1, 2, 3, 4, 5, 6, 7, 8)] == [0, 0, 0, None, None, 1, 1, None]


def test_gps_cumulative_distance_is_used_when_present() -> None:
    pts = [(1.0, 40.0, -73.0), (2.0, 40.001, -73.0), (3.0, 40.002, -73.0)]
    loc = [{"is_gap": False, "coordinates": coordinates(pts, [0.01, 0.02, 0.03], unit="km")}]
    act = parse_bundle(make_bundle(offsets=[1, 2, 3], location_data=loc, discipline="running"))
    assert [s.distance for s in act.samples] == pytest.approx([10.0, 20.0, 30.0])


@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("Etc/GMT+5", -5 * 3600),
        ("America/Chicago", -5 * 3600),
        ("Europe/Berlin", 3600),
        (None, None),
    ],
)
def test_timezone_is_metadata_only(zone: str | None, offset: int | None) -> None:
    act = parse_bundle(make_bundle(offsets=[1, 2], timezone=zone))
    assert act.utc_offset_s == offset
    assert act.samples[0].time == T0 + timedelta(seconds=1)  # never shifted
    assert act.timezone == zone


def test_unknown_timezone_is_not_fatal() -> None:
    act = parse_bundle(make_bundle(offsets=[1, 2], timezone="Mars/Olympus_Mons"))
    assert act.utc_offset_s is None and act.start == T0


def test_laps_follow_segments_and_cover_the_workout() -> None:
    offsets = [float(o) for o in range(1, 601)]
    segs = [segment("Warmup", 0, 120), segment("Main", 120, 420), segment("Cool Down", 540, 60)]
    segs.append(segment("Bonus", 700, 60))  # after the workout ended: dropped
    metrics = [metric("heart_rate", "bpm", [100 + (o % 50) for o in offsets])]
    calories = [summary("calories", "kcal", 101)]
    act = parse_bundle(
        make_bundle(offsets=offsets, metrics=metrics, segments=segs, summaries=calories)
    )
    assert [(lap.name, lap.start_offset_s) for lap in act.laps] == [
        ("Warmup", 0.0),
        ("Main", 120.0),
        ("Cool Down", 540.0),
    ]
    assert [lap.stats.duration_s for lap in act.laps] == [120.0, 420.0, 60.0]
    assert sum(lap.stats.calories_kcal or 0 for lap in act.laps) == 101
    assert all(float(lap.stats.calories_kcal or 0).is_integer() for lap in act.laps)
    assert act.laps[1].start == T0 + timedelta(seconds=120)
    in_main = [100 + (o % 50) for o in offsets if 120 <= o < 540]
    assert act.laps[1].stats.max_heart_rate == max(in_main)


def test_ride_details_segments_are_a_fallback_and_default_is_one_lap() -> None:
    details = {"segments": {"segment_list": [segment("A", 0, 5), segment("B", 5, 5)]}}
    act = parse_bundle(make_bundle(offsets=[1, 6, 10], ride_details=details))
    assert [lap.name for lap in act.laps] == ["A", "B"]
    act = parse_bundle(make_bundle(offsets=[1, 6, 10]))
    assert len(act.laps) == 1 and act.laps[0].stats.duration_s == 10


def test_workout_without_metrics_keeps_time_and_calories() -> None:
    act = parse_bundle(
        make_bundle(
            offsets=[1.0, 2.0, 3.0],
            discipline="strength",
            summaries=[summary("calories", "kcal", 47)],
            device_type="android",
        )
    )
    assert act.discipline is Discipline.STRENGTH
    assert len(act.samples) == 3 and all(s.heart_rate is None for s in act.samples)
    assert act.summary.calories_kcal == 47 and act.summary.distance_m is None
    assert act.device.name.startswith("Peloton App")


def test_end_time_null_uses_duration_and_just_ride_has_no_class() -> None:
    act = parse_bundle(
        make_bundle(
            offsets=[1, 2], end_time=None, duration=27, ride_id="0" * 32, instructor="JUST RIDE"
        )
    )
    assert act.end == T0 + timedelta(seconds=27)
    assert act.source.ride_id is None and act.instructor is None
    assert act.title == "20 min Test Ride"


def test_summary_prefers_peloton_figures() -> None:
    hr = metric("heart_rate", "bpm", [100, 120])
    hr["average_value"], hr["max_value"] = 111, 130  # Peloton's own full-resolution figures
    pace = metric("pace", "min/mi", [10.0, 8.0])
    act = parse_bundle(
        make_bundle(
            offsets=[1, 2],
            metrics=[hr, pace],
            total_work=123456.0,
            summaries=[summary("elevation", "ft", 100)],
            discipline="running",
        )
    )
    assert (act.summary.avg_heart_rate, act.summary.max_heart_rate) == (111, 130)
    assert act.summary.max_speed == pytest.approx(METRES_PER_MILE / 480)  # fastest pace
    assert act.summary.total_work_j == 123456.0
    assert act.summary.elevation_gain_m == pytest.approx(30.48)


def test_parsing_is_deterministic() -> None:
    b = make_bundle(offsets=[1, 2, 3], metrics=[metric("speed", "mph", [1.0, 2.0, 3.0])])
    assert parse_bundle(json.dumps(b)) == parse_bundle(json.dumps(b))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.pop("workout"), "workout: field required"),
        (lambda b: b["workout"].pop("start_time"), "workout.start_time: field required"),
        (
            lambda b: b["performance_graph"].update(seconds_since_pedaling_start="soon"),
            "performance_graph.seconds_since_pedaling_start",
        ),
        (
            lambda b: b["performance_graph"]["metrics"][0].update(
                display_unit="furlongs/fortnight"
            ),
            "unknown speed or pace unit 'furlongs/fortnight'",
        ),
        (
            lambda b: b["performance_graph"]["metrics"][0]["values"].append(3.0),
            "metrics[speed]: 3 values for 2 sample offsets",
        ),
        (
            lambda b: b["performance_graph"].update(seconds_since_pedaling_start=[2, 1]),
            "offsets must increase",
        ),
        (
            lambda b: b["performance_graph"]["metrics"][0]["values"].__setitem__(0, "fast"),
            "performance_graph.metrics.0.values.0",
        ),
        (
            lambda b: b["performance_graph"]["summaries"].append(summary("distance", "leagues", 1)),
            "unknown distance unit 'leagues'",
        ),
        (
            lambda b: b["performance_graph"].update(
                location_data=[{"coordinates": coordinates([(1, 95.0, 0.0)])}]
            ),
            "latitude",
        ),
    ],
)
def test_bad_input_names_what_is_wrong(mutate: object, message: str) -> None:
    b = make_bundle(offsets=[1, 2], metrics=[metric("speed", "mph", [1.0, 2.0])])
    mutate(b)  # type: ignore[operator]
    with pytest.raises(ConversionError) as err:
        parse_bundle(b)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"{not json", "not valid JSON"), (b"[]", "invalid workout bundle"), (b"", "not valid JSON")],
)
def test_not_a_bundle(data: bytes, message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        parse_bundle(data)


def test_nan_and_negative_offsets_are_refused_by_name() -> None:
    bad = make_bundle(offsets=[1, 2], metrics=[metric("output", "watts", [1.0, float("nan")])])
    with pytest.raises(ConversionError, match=r"metrics\.0\.values\.1: input should be a finite"):
        parse_bundle(json.dumps(bad))
    early = make_bundle(offsets=[1, 2])
    early["performance_graph"]["seconds_since_pedaling_start"] = [-1, 2]
    with pytest.raises(ConversionError, match="seconds_since_pedaling_start.0"):
        parse_bundle(early)
