"""FIT writer: every file is decoded by two independent decoders and compared with its input."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from garmin_fit_sdk import FIT_EPOCH_S, CrcCalculator, Profile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.convert.fit import SPORTS, FitDevice, dump_fit, fit_sport
from service.convert.fit_records import checksum
from service.convert.model import Activity, Discipline, Lap, Sample, Stats, Summary
from service.errors import ConversionError, InvalidInput
from tests.convert.activities import START, build
from tests.convert.fitcheck import SEMICIRCLE_DEG, Fit, decode, definitions, fit_seconds

# (sample attribute, FIT record field, input -> expected decoded value, tolerance, the range
# the FIT field can hold in input units). Ranges come from the FIT profile's base types,
# scales and offsets, written out here independently of the writer.
METRICS: list[tuple[str, str, Callable[[float], float], float, tuple[float, float]]] = [
    ("heart_rate", "heart_rate", float, 0, (0, 254)),
    ("power", "power", float, 0.5, (0, 65534)),
    ("cadence", "cadence", float, 0.5, (0, 254)),
    ("speed", "enhanced_speed", float, 0.0005, (0, 4294967.294)),
    ("speed", "speed", float, 0.0005, (0, 65.534)),
    ("distance", "distance", float, 0.005, (0, 42949672.94)),
    ("altitude", "enhanced_altitude", float, 0.1, (-500, 858993459 - 500)),
    ("altitude", "altitude", float, 0.1, (-500, 12606.8)),
    ("incline", "grade", float, 0.005, (-327.68, 327.66)),
    ("resistance", "resistance", lambda pct: pct * 2.54, 0.5, (0, 100)),
]
EPS = 1e-9


def _fit_int(moment: datetime) -> int:
    return math.floor(moment.timestamp() + 0.5) - FIT_EPOCH_S


def _close(decoded: float, expected: float, tolerance: float) -> bool:
    return abs(decoded - expected) <= tolerance + EPS


def _stride_factor(activity: Activity) -> float:
    """FIT counts running and walking cadence in strides (one foot); the model in steps."""
    sport = fit_sport(activity.discipline, activity.is_outdoor).sport
    return 0.5 if sport in ("running", "walking") else 1.0


def check_records(activity: Activity, fit: Fit) -> None:
    records = fit.records
    factor = _stride_factor(activity)
    if not activity.samples:
        assert [r["timestamp"] for r in records] == [
            fit_seconds(activity.start),
            fit_seconds(activity.end),
        ]
        assert all(r.keys() == {"timestamp"} for r in records)
        return
    assert len(records) == len(activity.samples)
    for i, (sample, record) in enumerate(zip(activity.samples, records, strict=True)):
        assert record["timestamp"] == fit_seconds(sample.time), i
        for attr, field, expect, tolerance, (lo, hi) in METRICS:
            value = getattr(sample, attr)
            if attr == "cadence" and value is not None:
                value *= factor
            if value is None or not lo <= value <= hi:
                assert field not in record, (i, field, value, record.get(field))
            else:
                assert field in record, (i, field, value)
                assert _close(record[field], expect(value), tolerance), (i, field, value, record)
        lat, lon = sample.latitude, sample.longitude
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            assert not {"position_lat", "position_long"} & record.keys(), i
        else:
            half = SEMICIRCLE_DEG / 2
            assert _close(record["position_lat"] * SEMICIRCLE_DEG, lat, half), (i, lat, record)
            decoded_lon = record["position_long"] * SEMICIRCLE_DEG
            assert _close(decoded_lon, lon, half) or _close(decoded_lon + 360, lon, half), i
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps)


STATS_FIELDS: list[tuple[str, list[str], float, tuple[float, float]]] = [
    ("distance_m", ["total_distance"], 0.005, (0, 42949672.94)),
    ("calories_kcal", ["total_calories"], 0.5, (0, 65534)),
    ("avg_heart_rate", ["avg_heart_rate"], 0, (0, 254)),
    ("max_heart_rate", ["max_heart_rate"], 0, (0, 254)),
    ("avg_power", ["avg_power"], 0.5, (0, 65534)),
    ("max_power", ["max_power"], 0.5, (0, 65534)),
    ("avg_cadence", ["avg_cadence"], 0.5, (0, 254)),
    ("max_cadence", ["max_cadence"], 0.5, (0, 254)),
    ("avg_speed", ["avg_speed", "enhanced_avg_speed"], 0.0005, (0, 65.534)),
    ("max_speed", ["max_speed", "enhanced_max_speed"], 0.0005, (0, 65.534)),
]


def check_stats(stats: Stats, message: dict[str, Any], where: str, factor: float) -> None:
    for key in ("total_elapsed_time", "total_timer_time"):
        assert _close(message[key], stats.duration_s, 0.0005), (where, key)
    for attr, fields, tolerance, (lo, hi) in STATS_FIELDS:
        value = getattr(stats, attr)
        if "cadence" in attr and value is not None:
            value *= factor
        for field in fields:
            if value is None or not lo <= value <= hi:
                assert field not in message, (where, field, value)
            else:
                assert _close(message[field], value, tolerance), (where, field, value, message)


def check_summary(activity: Activity, fit: Fit) -> None:
    sport = fit_sport(activity.discipline, activity.is_outdoor)
    laps = activity.laps or [Lap(start_offset_s=0, start=activity.start, stats=activity.summary)]
    decoded_laps = fit.all("lap")
    assert len(decoded_laps) == len(laps)
    for i, (lap, message) in enumerate(zip(laps, decoded_laps, strict=True)):
        assert message["message_index"] == i
        assert message["start_time"] == fit_seconds(lap.start)
        assert message["timestamp"] == fit_seconds(
            lap.start + timedelta(seconds=lap.stats.duration_s)
        )
        assert (message["sport"], message["sub_sport"]) == sport
        assert message["lap_trigger"] == (
            "session_end" if i == len(laps) - 1 else "fitness_equipment"
        )
        check_stats(lap.stats, message, f"lap {i}", _stride_factor(activity))

    session = fit.one("session")
    summary = activity.summary
    check_stats(summary, session, "session", _stride_factor(activity))
    assert (session["sport"], session["sub_sport"]) == sport
    assert session["start_time"] == fit_seconds(activity.start)
    assert session["timestamp"] == fit_seconds(activity.end)
    assert session["num_laps"] == len(laps)
    assert session["first_lap_index"] == 0
    assert session["trigger"] == "activity_end"
    for attr, field in (("total_work_j", "total_work"), ("elevation_gain_m", "total_ascent")):
        value = getattr(summary, attr)
        if value is None:
            assert field not in session
        else:
            assert _close(session[field], value, 0.5)

    done = fit.one("activity")
    assert done["num_sessions"] == 1
    assert done["type"] == "manual"
    assert done["timestamp"] == fit_seconds(activity.end)
    assert _close(done["total_timer_time"], summary.duration_s, 0.0005)
    if activity.utc_offset_s is None:
        assert "local_timestamp" not in done
    else:
        assert done["local_timestamp"] == _fit_int(activity.end) + activity.utc_offset_s

    events = fit.all("event")
    assert [(e["event"], e["event_type"]) for e in events] == [
        ("timer", "start"),
        ("timer", "stop_all"),
    ]
    assert events[0]["timestamp"] == fit_seconds(activity.start)
    assert events[1]["timestamp"] >= fit_seconds(activity.end)

    file_id = fit.one("file_id")
    assert file_id["type"] == "activity"
    assert file_id["time_created"] == fit_seconds(activity.start)
    assert fit.one("device_info")["device_index"] == "creator"


def check(activity: Activity, **kwargs: Any) -> Fit:
    """Write, decode with both decoders, compare everything; returns the decoded file."""
    data = dump_fit(activity, **kwargs)
    assert dump_fit(activity, **kwargs) == data  # deterministic
    fit = decode(data)
    check_records(activity, fit)
    check_summary(activity, fit)
    return fit


def with_samples(activity: Activity, samples: list[Sample], **update: Any) -> Activity:
    return activity.model_copy(update={"samples": samples, **update})


def sample(offset: float, **values: Any) -> Sample:
    return Sample(offset_s=offset, time=START + timedelta(seconds=offset), **values)


# --- scenarios -------------------------------------------------------------------------------


def test_cycling_with_laps() -> None:
    activity = build(seconds=600, laps=3)
    fit = check(activity)
    # The record fast path defines the record layout once for all 600 records.
    assert definitions(dump_fit(activity)).count("record") == 1
    assert len(fit.all("lap")) == 3
    assert [lap["start_time"] for lap in fit.all("lap")] == [
        START,
        START + timedelta(seconds=200),
        START + timedelta(seconds=400),
    ]
    # Spot-check a record by hand as well as through the generic comparison.
    assert fit.records[9]["heart_rate"] == 95 + 10
    assert fit.records[9]["power"] == 100 + 70
    session = fit.one("session")
    assert (session["sport"], session["sub_sport"]) == ("cycling", "indoor_cycling")
    assert session["total_work"] == 61000
    assert session["total_calories"] == 123


def test_outdoor_run_with_gps_and_altitude() -> None:
    activity = build(
        discipline=Discipline.RUNNING,
        outdoor=True,
        gps=True,
        altitude=True,
        power=False,
        seconds=300,
        device_type="iPhone",
        device_name="Peloton App",
    )
    fit = check(activity)
    with_position = [r for r in fit.records if "position_lat" in r]
    assert 0 < len(with_position) < len(fit.records)  # the builder leaves a hole in the track
    assert all("altitude" in r and "enhanced_altitude" in r for r in fit.records)
    assert all("power" not in r for r in fit.records)
    assert (fit.one("session")["sport"], fit.one("session")["sub_sport"]) == ("running", "generic")
    assert fit.one("file_id")["product_name"] == "Peloton App"


def test_rowing_strokes_go_to_cadence() -> None:
    activity = build(discipline=Discipline.ROWING, seconds=120, device_name="Peloton Row")
    fit = check(activity)
    assert [r["cadence"] for r in fit.records] == [round(s.cadence or 0) for s in activity.samples]
    session = fit.one("session")
    assert (session["sport"], session["sub_sport"]) == ("rowing", "indoor_rowing")


def test_walking_cadence_is_strides() -> None:
    activity = build(discipline=Discipline.WALKING, seconds=60, laps=1)
    fit = check(activity)
    # 70 + off % 30 steps/min; FIT wants strides (one foot) and readers double it for display.
    assert [r["cadence"] for r in fit.records[:3]] == [36, 36, 36]  # 71/2, 72/2, 73/2 rounded
    assert fit.one("session")["max_cadence"] == round(99 / 2)


def test_strength_with_heart_rate_only() -> None:
    activity = build(
        discipline=Discipline.STRENGTH, power=False, cadence=False, speed=False, seconds=240
    )
    fit = check(activity)
    assert all(r.keys() == {"timestamp", "heart_rate"} for r in fit.records)
    session = fit.one("session")
    assert (session["sport"], session["sub_sport"]) == ("training", "strength_training")
    assert not {"avg_power", "total_distance", "avg_speed", "total_work"} & session.keys()


def test_no_metrics_gives_timestamp_records_and_a_lap() -> None:
    bare = build(
        discipline=Discipline.MEDITATION,
        heart_rate=False,
        power=False,
        cadence=False,
        speed=False,
        seconds=120,
    )
    fit = check(bare)
    assert all(r.keys() == {"timestamp"} for r in fit.records)
    # No samples and no laps at all: start/end records, one lap from the summary.
    empty = with_samples(bare, [], laps=[])
    fit = check(empty)
    assert len(fit.records) == 2
    assert len(fit.all("lap")) == 1
    assert fit.one("session")["total_calories"] == 123


def test_every_5_seconds_from_offset_7() -> None:
    activity = build(every_n=5, first_offset=7, seconds=300)
    fit = check(activity)
    assert fit.records[0]["timestamp"] == START + timedelta(seconds=7)
    assert fit.records[1]["timestamp"] == START + timedelta(seconds=12)
    assert len(fit.records) == len(range(7, 301, 5))


def test_null_holes_are_absent_not_zero() -> None:
    activity = build(null_every=4, seconds=120)
    fit = check(activity)
    holes = [r for r, s in zip(fit.records, activity.samples, strict=True) if s.heart_rate is None]
    assert holes
    assert all(not {"heart_rate", "power", "cadence", "speed"} & r.keys() for r in holes)


def test_absurd_values_are_dropped_never_wrapped() -> None:
    base = build(seconds=10)
    samples = [
        sample(1, heart_rate=300, power=-5.0, cadence=1000.0, speed=100.0),
        sample(2, heart_rate=120, power=70000.0, distance=math.nan, altitude=-1000.0),
        sample(3, heart_rate=-1, latitude=95.0, longitude=10.0, speed=math.inf),
        sample(4, latitude=10.0, longitude=180.0, altitude=20000.0, incline=1e9),
        sample(5, latitude=10.0, longitude=None, heart_rate=255, resistance=-3.0),
    ]
    summary = base.summary.model_copy(update={"max_heart_rate": 300, "avg_power": -1.0})
    activity = with_samples(base, samples, summary=summary)
    fit = check(activity)
    records = fit.records
    assert [r.get("heart_rate") for r in records] == [None, 120, None, None, None]  # never 44
    assert records[0].keys() == {"timestamp", "enhanced_speed"}  # 100 m/s only fits 32 bits
    assert not {"distance", "power"} & records[1].keys()
    assert "position_lat" not in records[2]
    assert records[3]["position_long"] * SEMICIRCLE_DEG == -180.0  # +180° is the antimeridian
    assert records[3]["enhanced_altitude"] == pytest.approx(20000.0)
    assert not {"altitude", "grade"} & records[3].keys()
    assert "position_lat" not in records[4]
    session = fit.one("session")
    assert not {"max_heart_rate", "avg_power"} & session.keys()


def test_fractional_offsets_round_to_whole_seconds() -> None:
    offsets = [0.4, 0.5, 0.6, 1.49, 2.5, 2.5]
    activity = with_samples(build(seconds=10), [sample(o, heart_rate=100) for o in offsets])
    fit = check(activity)
    got = [int((r["timestamp"] - START).total_seconds()) for r in fit.records]
    assert got == [0, 1, 1, 1, 3, 3]


def test_offsets_going_back_are_refused() -> None:
    activity = with_samples(build(seconds=10), [sample(2), sample(1)])
    with pytest.raises(ConversionError, match="back in time"):
        dump_fit(activity)


def test_non_finite_offset_is_refused() -> None:
    bad = Sample(offset_s=math.nan, time=START)
    for samples in ([sample(1), bad], [sample(1), bad, sample(2)]):
        with pytest.raises(ConversionError, match="finite"):
            dump_fit(with_samples(build(seconds=10), samples))


def test_times_fit_cannot_store_are_refused() -> None:
    old = datetime(1990, 1, 1, tzinfo=UTC)
    activity = build(seconds=10).model_copy(update={"start": old, "end": old + timedelta(1)})
    with pytest.raises(ConversionError, match="outside the range"):
        dump_fit(activity)
    backwards = build(seconds=10).model_copy(update={"end": START - timedelta(seconds=1)})
    with pytest.raises(ConversionError, match="ends before it starts"):
        dump_fit(backwards)


@pytest.mark.parametrize("offset", [None, 0, -5 * 3600, 5 * 3600 + 1800])
def test_local_timestamp_follows_utc_offset(offset: int | None) -> None:
    activity = build(seconds=60).model_copy(update={"utc_offset_s": offset})
    fit = check(activity)
    # UTC times never shift with the workout's zone.
    assert fit.one("session")["start_time"] == START
    assert fit.records[0]["timestamp"] == START + timedelta(seconds=1)


def test_deterministic_and_serial_from_workout_id() -> None:
    activity = build(seconds=60)
    assert dump_fit(activity) == dump_fit(build(seconds=60))
    serial = decode(dump_fit(activity)).one("file_id")["serial_number"]
    other_source = activity.source.model_copy(update={"workout_id": "f" * 32})
    other = decode(dump_fit(activity.model_copy(update={"source": other_source})))
    assert other.one("file_id")["serial_number"] != serial


def test_default_device_is_pelosync_on_peloton() -> None:
    fit = check(build(seconds=30, device_name="Peloton Bike+"))
    file_id = fit.one("file_id")
    assert file_id["manufacturer"] == "peloton"
    assert "product" not in file_id  # Peloton has no FIT product numbers: none is made up
    assert file_id["product_name"] == "Peloton Bike+"
    assert fit.one("device_info")["product_name"] == "Peloton Bike+"
    assert fit.one("file_creator")["software_version"] == 1  # pelosync 0.1 as X.YY


def test_garmin_device_profile_is_one_argument() -> None:
    device = FitDevice("garmin", 3113, 3413684246, 19.2, "Forerunner 945")
    fit = check(build(seconds=30), device=device)
    file_id = fit.one("file_id")
    assert (file_id["manufacturer"], file_id["garmin_product"]) == ("garmin", "fr945")
    assert file_id["serial_number"] == 3413684246
    info = fit.one("device_info")
    assert info["software_version"] == pytest.approx(19.2)
    assert info["garmin_product"] == "fr945"
    assert fit.one("file_creator")["software_version"] == 1920


@pytest.mark.parametrize(
    "kwargs",
    [
        {"manufacturer": "no_such_maker"},
        {"manufacturer": "garmin", "product": 70000},
        {"manufacturer": "garmin", "serial_number": 0},
        {"manufacturer": "garmin", "software_version": 1000.0},
    ],
)
def test_bad_device_is_invalid_input(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="FIT"):
        FitDevice(**kwargs)


def test_long_device_name_is_truncated_safely() -> None:
    fit = check(build(seconds=10, device_name="Peloton\x00 " + "é" * 80))
    name = fit.one("file_id")["product_name"]
    assert name.startswith("Peloton  é")
    assert len(name.encode()) <= 63


# --- sports ----------------------------------------------------------------------------------


def test_sport_table_covers_every_discipline_with_profile_names() -> None:
    sports = set(Profile["types"]["sport"].values())
    sub_sports = set(Profile["types"]["sub_sport"].values())
    assert set(SPORTS) == set(Discipline)
    for pair in (p for pairs in SPORTS.values() for p in pairs):
        assert pair.sport in sports, pair
        assert pair.sub_sport in sub_sports, pair


EXPECTED_SPORTS = {
    (Discipline.CYCLING, False): ("cycling", "indoor_cycling"),
    (Discipline.CYCLING, True): ("cycling", "road"),
    (Discipline.RUNNING, False): ("running", "treadmill"),
    (Discipline.RUNNING, True): ("running", "generic"),
    (Discipline.WALKING, False): ("walking", "indoor_walking"),
    (Discipline.WALKING, True): ("walking", "generic"),
    (Discipline.ROWING, False): ("rowing", "indoor_rowing"),
    (Discipline.BIKE_BOOTCAMP, False): ("training", "cardio_training"),
    (Discipline.TREAD_BOOTCAMP, False): ("training", "cardio_training"),
    (Discipline.ROW_BOOTCAMP, False): ("training", "cardio_training"),
    (Discipline.STRENGTH, False): ("training", "strength_training"),
    (Discipline.YOGA, False): ("training", "yoga"),
    (Discipline.MEDITATION, False): ("meditation", "generic"),
    (Discipline.STRETCHING, False): ("training", "flexibility_training"),
    (Discipline.CARDIO, False): ("training", "cardio_training"),
    (Discipline.OTHER, False): ("generic", "generic"),
}


@pytest.mark.parametrize(("key", "expected"), EXPECTED_SPORTS.items(), ids=str)
def test_sport_per_discipline(key: tuple[Discipline, bool], expected: tuple[str, str]) -> None:
    discipline, outdoor = key
    fit = check(build(discipline=discipline, outdoor=outdoor, seconds=20, laps=2))
    for message in [fit.one("session"), *fit.all("lap")]:
        assert (message["sport"], message["sub_sport"]) == expected


# --- CRC -------------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_checksum_matches_the_sdk(data: bytes) -> None:
    assert checksum(data) == CrcCalculator.calculate_crc(data, 0, len(data))


# --- property test ---------------------------------------------------------------------------


def _maybe(strategy: st.SearchStrategy[Any], present: bool) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy) if present else st.none()


_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "heart_rate": st.integers(30, 230),
    "power": st.floats(0, 2000),
    "cadence": st.floats(0, 200),
    "speed": st.floats(0, 30),
    "distance": st.floats(0, 200_000),
    "altitude": st.floats(-400, 8000),
    "incline": st.floats(-15, 40),
    "resistance": st.floats(0, 100),
}


@st.composite
def _stats(draw: st.DrawFn, duration: float) -> dict[str, Any]:
    def opt(strategy: st.SearchStrategy[Any]) -> Any:
        return draw(st.one_of(st.none(), strategy))

    return {
        "duration_s": duration,
        "distance_m": opt(st.floats(0, 100_000)),
        "calories_kcal": opt(st.floats(0, 3000)),
        "avg_heart_rate": opt(st.integers(40, 220)),
        "max_heart_rate": opt(st.integers(40, 230)),
        "avg_power": opt(st.floats(0, 1000)),
        "max_power": opt(st.floats(0, 2000)),
        "avg_cadence": opt(st.floats(0, 200)),
        "max_cadence": opt(st.floats(0, 200)),
        "avg_speed": opt(st.floats(0, 30)),
        "max_speed": opt(st.floats(0, 30)),
    }


@st.composite
def activities(draw: st.DrawFn) -> Activity:
    start = draw(st.datetimes(datetime(2014, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC)))
    present = {name: draw(st.booleans()) for name in [*_VALUES, "position"]}
    steps = draw(st.lists(st.one_of(st.integers(0, 10), st.floats(0, 5)), max_size=40))
    offsets = [sum(steps[: i + 1]) for i in range(len(steps))]
    samples = []
    for offset in offsets:
        values = {name: draw(_maybe(strategy, present[name])) for name, strategy in _VALUES.items()}
        if present["position"] and draw(st.booleans()):
            values["latitude"] = draw(st.floats(-89.9, 89.9))
            values["longitude"] = draw(st.floats(-179.9, 179.9))
        samples.append(Sample(offset_s=offset, time=start + timedelta(seconds=offset), **values))
    duration = float(max(offsets, default=0) + draw(st.integers(0, 100)))
    lap_count = draw(st.integers(0, 4))
    cuts = sorted(draw(st.lists(st.floats(0, duration), min_size=lap_count, max_size=lap_count)))
    laps = []
    for i, cut in enumerate(cuts):
        length = (cuts[i + 1] if i + 1 < len(cuts) else duration) - cut
        stats = Stats(**draw(_stats(length)))
        laps.append(Lap(start_offset_s=cut, start=start + timedelta(seconds=cut), stats=stats))
    summary = Summary(
        **draw(_stats(duration)),
        total_work_j=draw(st.one_of(st.none(), st.floats(0, 2e6))),
        elevation_gain_m=draw(st.one_of(st.none(), st.floats(0, 3000))),
    )
    base = build(seconds=1, laps=1)
    return base.model_copy(
        update={
            "discipline": draw(st.sampled_from(Discipline)),
            "is_outdoor": draw(st.booleans()),
            "start": start,
            "end": start + timedelta(seconds=duration),
            "utc_offset_s": draw(st.one_of(st.none(), st.integers(-12 * 3600, 14 * 3600))),
            "summary": summary,
            "laps": laps,
            "samples": samples,
        }
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(activities())
def test_random_activities_round_trip(activity: Activity) -> None:
    check(activity)
