"""TCX writer: strict schema validity, then every value read back and compared with the input."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree
from pydantic import ValidationError

from service import __version__
from service.convert.model import Activity, Discipline, Lap, Sample, Stats
from service.convert.tcx import dump_tcx
from service.convert.xml_common import UtcFormatter, utc_iso
from service.errors import ConversionError
from tests.convert.activities import START, build
from tests.convert.xsd import validate_tcx

NS = {
    "t": "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2",
    "x": "http://www.garmin.com/xmlschemas/ActivityExtension/v2",
}
RUN_LIKE = {Discipline.RUNNING, Discipline.WALKING, Discipline.TREAD_BOOTCAMP}
BIKE_LIKE = {Discipline.CYCLING, Discipline.BIKE_BOOTCAMP}

CASES = {
    "cycling_laps": lambda: build(laps=4),
    "outdoor_run_gps": lambda: build(
        discipline=Discipline.RUNNING,
        gps=True,
        altitude=True,
        outdoor=True,
        power=False,
        device_type="iPhone",
        device_name="Peloton App",
    ),
    "rowing": lambda: build(discipline=Discipline.ROWING, device_name="Peloton Row"),
    "strength_hr_only": lambda: build(
        discipline=Discipline.STRENGTH, power=False, cadence=False, speed=False, laps=1
    ),
    "no_metrics": lambda: build(
        discipline=Discipline.YOGA,
        heart_rate=False,
        power=False,
        cadence=False,
        speed=False,
        laps=1,
    ),
    "every_5_from_7": lambda: build(every_n=5, first_offset=7),
    "null_holes": lambda: build(null_every=7, gps=True, altitude=True),
    "walking_holes": lambda: build(discipline=Discipline.WALKING, null_every=5),
}


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def child_text(el: etree._Element, path: str) -> str | None:
    found = el.find(path, NS)
    return None if found is None else found.text


def num(el: etree._Element, path: str) -> float | None:
    text = child_text(el, path)
    return None if text is None else float(text)


def point_values(tp: etree._Element) -> dict[str, float | None]:
    """Everything a Trackpoint carries; None for an element that is absent."""
    return {
        "lat": num(tp, "t:Position/t:LatitudeDegrees"),
        "lon": num(tp, "t:Position/t:LongitudeDegrees"),
        "alt": num(tp, "t:AltitudeMeters"),
        "dist": num(tp, "t:DistanceMeters"),
        "hr": num(tp, "t:HeartRateBpm/t:Value"),
        "cad": num(tp, "t:Cadence"),
        "speed": num(tp, "t:Extensions/x:TPX/x:Speed"),
        "run_cad": num(tp, "t:Extensions/x:TPX/x:RunCadence"),
        "watts": num(tp, "t:Extensions/x:TPX/x:Watts"),
    }


def expected_values(s: Sample, running: bool) -> dict[str, float | None]:
    cad = s.cadence
    return {
        "lat": s.latitude,
        "lon": s.longitude,
        "alt": s.altitude,
        "dist": s.distance,
        "hr": s.heart_rate,
        "cad": None if cad is None or running else round(cad),
        "speed": s.speed,
        "run_cad": None if cad is None or not running else round(cad / 2),
        "watts": None if s.power is None else round(s.power),
    }


# Written precision: 7 decimals for degrees, 2 for metres, 3 for speed; integers exact.
# (a hair above half a unit in the last place, for binary floats that sit on a rounding tie)
TOLERANCE = {"lat": 5.1e-8, "lon": 5.1e-8, "alt": 5.1e-3, "dist": 5.1e-3, "speed": 5.1e-4}


def assert_point(tp: etree._Element, s: Sample, running: bool) -> None:
    got, want = point_values(tp), expected_values(s, running)
    for key, expected in want.items():
        value = got[key]
        if expected is None:
            assert value is None, f"{key} written for a missing value at {s.offset_s}s"
        else:
            assert value is not None, f"{key} missing at {s.offset_s}s"
            assert value == pytest.approx(expected, abs=TOLERANCE.get(key, 0)), key
    time = child_text(tp, "t:Time")
    assert time is not None
    assert time.endswith("Z")
    assert datetime.fromisoformat(time) == s.time


def lap_samples(activity: Activity) -> list[list[Sample]]:
    """The split the writer promises, computed the slow obvious way."""
    starts = [lap.start_offset_s for lap in activity.laps]
    groups: list[list[Sample]] = [[] for _ in starts]
    for s in activity.samples:
        k = max([i for i, start in enumerate(starts) if start <= s.offset_s] or [0])
        groups[k].append(s)
    return groups


@pytest.fixture(params=sorted(CASES))
def activity(request: pytest.FixtureRequest) -> Activity:
    return CASES[request.param]()


def test_output_is_strictly_valid(activity: Activity) -> None:
    data = dump_tcx(activity)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    validate_tcx(data)


def test_trackpoints_round_trip(activity: Activity) -> None:
    root = parse(dump_tcx(activity))
    running = activity.discipline in RUN_LIKE
    points = root.findall(".//t:Trackpoint", NS)
    assert len(points) == len(activity.samples)
    for tp, s in zip(points, activity.samples, strict=True):
        assert_point(tp, s, running)


def test_laps_round_trip(activity: Activity) -> None:
    root = parse(dump_tcx(activity))
    laps = root.findall(".//t:Lap", NS)
    assert len(laps) == len(activity.laps)
    groups = lap_samples(activity)
    cycling = activity.discipline in BIKE_LIKE
    running = activity.discipline in RUN_LIKE
    for el, lap, samples in zip(laps, activity.laps, groups, strict=True):
        st_ = lap.stats
        assert datetime.fromisoformat(el.get("StartTime", "")) == lap.start
        assert num(el, "t:TotalTimeSeconds") == pytest.approx(st_.duration_s, abs=5e-4)
        assert num(el, "t:DistanceMeters") == pytest.approx(st_.distance_m or 0, abs=5e-4)
        assert num(el, "t:Calories") == round(st_.calories_kcal or 0)
        assert num(el, "t:AverageHeartRateBpm/t:Value") == st_.avg_heart_rate
        assert num(el, "t:MaximumHeartRateBpm/t:Value") == st_.max_heart_rate
        assert num(el, "t:MaximumSpeed") == (
            None if st_.max_speed is None else pytest.approx(st_.max_speed, abs=5e-4)
        )
        assert child_text(el, "t:Intensity") == "Active"
        assert child_text(el, "t:TriggerMethod") == "Manual"
        avg_cad = st_.avg_cadence
        bike_avg = round(avg_cad) if cycling and avg_cad is not None else None
        assert num(el, "t:Cadence") == bike_avg
        assert child_text(el, "t:Notes") == lap.name
        lx = "t:Extensions/x:LX/x:"
        assert num(el, lx + "AvgSpeed") == (
            None if st_.avg_speed is None else pytest.approx(st_.avg_speed, abs=5e-4)
        )
        assert num(el, lx + "AvgWatts") == (None if st_.avg_power is None else round(st_.avg_power))
        assert num(el, lx + "MaxWatts") == (None if st_.max_power is None else round(st_.max_power))
        max_cad = st_.max_cadence
        bike_max = round(max_cad) if cycling and max_cad is not None else None
        assert num(el, lx + "MaxBikeCadence") == bike_max
        run_avg = round(avg_cad / 2) if running and avg_cad is not None else None
        run_max = round(max_cad / 2) if running and max_cad is not None else None
        assert num(el, lx + "AvgRunCadence") == run_avg
        assert num(el, lx + "MaxRunCadence") == run_max
        # each lap's Track holds exactly that lap's samples
        assert len(el.findall("t:Track", NS)) == (1 if samples else 0)
        times = [child_text(tp, "t:Time") for tp in el.findall("t:Track/t:Trackpoint", NS)]
        assert [datetime.fromisoformat(t or "") for t in times] == [s.time for s in samples]


def test_header_creator_author_notes(activity: Activity) -> None:
    root = parse(dump_tcx(activity))
    act = root.find("t:Activities/t:Activity", NS)
    assert act is not None
    assert child_text(act, "t:Id") == "2026-03-14T15:09:26Z"
    assert child_text(act, "t:Notes") == "20 min Test Ride with Test Instructor"
    creator = act.find("t:Creator", NS)
    assert creator is not None
    xsi_type = "{http://www.w3.org/2001/XMLSchema-instance}type"
    assert creator.get(xsi_type) == "Device_t"
    assert child_text(creator, "t:Name") == activity.device.name
    assert [child_text(creator, p) for p in ("t:UnitId", "t:ProductID")] == ["0", "0"]
    assert child_text(creator, "t:Version/t:VersionMajor") == "1"
    assert child_text(creator, "t:Version/t:VersionMinor") == "0"
    author = root.find("t:Author", NS)
    assert author is not None
    assert author.get(xsi_type) == "Application_t"
    assert child_text(author, "t:Name") == "pelosync"
    version = [
        child_text(author, f"t:Build/t:Version/t:{p}")
        for p in ("VersionMajor", "VersionMinor", "BuildMajor")
    ]
    assert version == __version__.split(".")[:3]
    assert child_text(author, "t:LangID") == "en"
    assert child_text(author, "t:PartNumber") == "000-00000-00"


def test_deterministic(activity: Activity) -> None:
    assert dump_tcx(activity) == dump_tcx(activity.model_copy(deep=True))


@pytest.mark.parametrize("discipline", list(Discipline))
def test_sport(discipline: Discipline) -> None:
    data = dump_tcx(build(discipline=discipline, seconds=30, laps=1))
    validate_tcx(data)
    act = parse(data).find("t:Activities/t:Activity", NS)
    assert act is not None
    expected = (
        "Biking" if discipline in BIKE_LIKE else "Running" if discipline in RUN_LIKE else "Other"
    )
    assert act.get("Sport") == expected


def test_missing_values_are_absent_not_zero() -> None:
    data = dump_tcx(build(null_every=4, seconds=60, laps=1))
    root = parse(data)
    holes = [tp for tp in root.findall(".//t:Trackpoint", NS) if tp.find("t:Cadence", NS) is None]
    assert len(holes) == 15  # i % 4 == 3 for 60 samples
    for tp in holes:
        values = point_values(tp)
        assert (values["hr"], values["watts"], values["speed"]) == (None, None, None)
        assert values["dist"] is not None  # distance keeps its last value, it is not a hole
    assert b"<ns3:Watts>0<" not in data
    assert b"<Value>0<" not in data


def test_sample_without_values_is_a_bare_trackpoint() -> None:
    activity = build(heart_rate=False, power=False, cadence=False, speed=False, seconds=3, laps=1)
    data = dump_tcx(activity)
    validate_tcx(data)
    points = parse(data).findall(".//t:Trackpoint", NS)
    assert len(points) == 3
    assert all([child.tag.rsplit("}", 1)[1] for child in tp] == ["Time"] for tp in points)


def with_samples(samples: list[Sample], **update: object) -> Activity:
    base = build(seconds=60, laps=1)
    return base.model_copy(update={"samples": samples, **update})


def sample(offset: float, **values: Any) -> Sample:
    return Sample(offset_s=offset, time=START + timedelta(seconds=offset), **values)


def test_values_capped_to_schema_ranges() -> None:
    activity = with_samples(
        [
            sample(1, heart_rate=300, cadence=400.0, power=70000.0),
            sample(2, heart_rate=0, cadence=-3.0, power=-5.0),
        ]
    )
    data = dump_tcx(activity)
    validate_tcx(data)
    first, second = (point_values(tp) for tp in parse(data).findall(".//t:Trackpoint", NS))
    assert (first["hr"], first["cad"], first["watts"]) == (255, 254, 65535)
    assert (second["hr"], second["cad"], second["watts"]) == (None, 0, 0)


def test_fractional_and_non_utc_times() -> None:
    minus5 = timezone(timedelta(hours=-5))
    local_start = START.astimezone(minus5)
    samples = [
        Sample(offset_s=0.5, time=local_start + timedelta(seconds=0.5), heart_rate=100),
        Sample(offset_s=1.25, time=START + timedelta(seconds=1.25), heart_rate=101),
    ]
    lap = Lap(start_offset_s=0, start=local_start, stats=Stats(duration_s=2))
    activity = with_samples(samples, start=local_start, laps=[lap])
    data = dump_tcx(activity)
    validate_tcx(data)
    root = parse(data)
    assert child_text(root, ".//t:Id") == "2026-03-14T15:09:26Z"
    assert [lap.get("StartTime") for lap in root.iterfind(".//t:Lap", NS)] == [
        "2026-03-14T15:09:26Z"
    ]
    times = [tp.text for tp in root.findall(".//t:Trackpoint/t:Time", NS)]
    assert times == ["2026-03-14T15:09:26.5Z", "2026-03-14T15:09:27.25Z"]


def test_samples_outside_laps_go_to_first_and_last() -> None:
    laps = [
        Lap(start_offset_s=s, start=START + timedelta(seconds=s), stats=Stats(duration_s=10))
        for s in (10, 20, 30)
    ]
    samples = [sample(o, heart_rate=100) for o in (2, 12, 40, 50)]
    data = dump_tcx(with_samples(samples, laps=laps))
    validate_tcx(data)
    per_lap = [
        len(el.findall("t:Track/t:Trackpoint", NS)) for el in parse(data).iterfind(".//t:Lap", NS)
    ]
    assert per_lap == [2, 0, 2]  # lap 2 has none: no Track at all (a Track needs a point)


def test_unsorted_samples_still_land_in_their_laps() -> None:
    laps = [
        Lap(start_offset_s=s, start=START + timedelta(seconds=s), stats=Stats(duration_s=10))
        for s in (0, 10)
    ]
    samples = [sample(o, heart_rate=100 + o) for o in (15, 3, 12, 5)]
    root = parse(dump_tcx(with_samples(samples, laps=laps)))
    hrs = [
        [int(v.text or 0) for v in el.iterfind("t:Track/t:Trackpoint/t:HeartRateBpm/t:Value", NS)]
        for el in root.iterfind(".//t:Lap", NS)
    ]
    assert hrs == [[103, 105], [115, 112]]


def test_activity_without_laps_gets_one_whole_lap() -> None:
    activity = build(seconds=90, laps=2).model_copy(update={"laps": []})
    data = dump_tcx(activity)
    validate_tcx(data)
    laps = parse(data).findall(".//t:Lap", NS)
    assert len(laps) == 1
    assert laps[0].get("StartTime") == "2026-03-14T15:09:26Z"
    assert num(laps[0], "t:TotalTimeSeconds") == 90
    assert num(laps[0], "t:Calories") == round(activity.summary.calories_kcal or 0)
    assert len(laps[0].findall(".//t:Trackpoint", NS)) == 90


def test_free_text_is_escaped_and_cleaned() -> None:
    activity = build(seconds=5, laps=1).model_copy(
        update={"title": 'Rock & <Roll> "Ride"\x00\x1b', "instructor": None}
    )
    data = dump_tcx(activity)
    validate_tcx(data)
    assert child_text(parse(data), ".//t:Activity/t:Notes") == 'Rock & <Roll> "Ride"'


@pytest.mark.parametrize("field", ["power", "speed", "distance", "altitude", "cadence"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_values_are_rejected_by_name(field: str, bad: float) -> None:
    activity = with_samples([sample(1, heart_rate=90), sample(2, **{field: bad})])
    with pytest.raises(ConversionError, match=f"offset 2s has a non-finite {field}"):
        dump_tcx(activity)


def test_impossible_position_is_rejected() -> None:
    activity = with_samples([sample(1, latitude=95.0, longitude=10.0, track_segment=0)])
    with pytest.raises(ConversionError, match="impossible position"):
        dump_tcx(activity)


def test_non_finite_lap_figure_cannot_even_reach_the_writer() -> None:
    with pytest.raises(ValidationError, match="max_speed"):
        Stats(duration_s=20, max_speed=math.nan)


# --- the validator itself must be strict, or the tests above prove little ---------------------

GOOD = dump_tcx(build(seconds=20, laps=1))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<ns3:Watts>107<", b"<ns3:Watts>-5<"),  # unsignedShort
        (b"<ns3:TPX><ns3:Speed>", b"<ns3:TPX><ns3:Watts>1</ns3:Watts><ns3:Speed>"),  # order
        (b"ns3:TPX>", b"ns3:TPx>"),  # misspelled extension element: only strict rejects it
        (b"<HeartRateBpm><Value>96<", b"<HeartRateBpm><Value>0<"),  # minimum 1
        (b'Sport="Biking"', b'Sport="Cycling"'),
        (b"<Id>2026-03-14T", b"<Id>2026-03-14 "),
        (b"<?xml", b" <?xml"),
        (b"<PartNumber>000-00000-00", b"<PartNumber>pelosync"),
    ],
)
def test_validator_rejects(old: bytes, new: bytes) -> None:
    assert old in GOOD
    validate_tcx(GOOD)
    with pytest.raises(AssertionError):
        validate_tcx(GOOD.replace(old, new))


# --- property: random samples with random holes -----------------------------------------------


@st.composite
def random_samples(draw: st.DrawFn) -> list[Sample]:
    count = draw(st.integers(min_value=1, max_value=40))
    offsets = sorted(draw(st.sets(st.integers(0, 4000), min_size=count, max_size=count)))
    gps = draw(st.booleans())
    out = []
    for off in offsets:
        frac = draw(st.sampled_from([0, 0, 0.5, 0.25]))
        lat = draw(st.none() | st.floats(-90, 90)) if gps else None
        out.append(
            Sample(
                offset_s=off + frac,
                time=START + timedelta(seconds=off + frac),
                heart_rate=draw(st.none() | st.integers(1, 255)),
                power=draw(st.none() | st.floats(0, 3000)),
                cadence=draw(st.none() | st.floats(0, 254)),
                speed=draw(st.none() | st.floats(0, 30)),
                distance=draw(st.none() | st.floats(0, 1e6)),
                latitude=lat,
                longitude=None if lat is None else draw(st.floats(-180, 179.9999)),
                altitude=draw(st.none() | st.floats(-500, 9000)),
                track_segment=None if lat is None else 0,
            )
        )
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    samples=random_samples(),
    discipline=st.sampled_from([Discipline.CYCLING, Discipline.RUNNING, Discipline.ROWING]),
    lap_count=st.integers(1, 4),
)
def test_property_random_holes_round_trip(
    samples: list[Sample], discipline: Discipline, lap_count: int
) -> None:
    end = samples[-1].offset_s + 1
    laps = [
        Lap(
            start_offset_s=k * end / lap_count,
            start=START + timedelta(seconds=k * end / lap_count),
            stats=Stats(duration_s=end / lap_count),
        )
        for k in range(lap_count)
    ]
    activity = with_samples(samples, laps=laps, discipline=discipline)
    data = dump_tcx(activity)
    validate_tcx(data)
    assert data == dump_tcx(activity)
    points = parse(data).findall(".//t:Trackpoint", NS)
    assert len(points) == len(samples)
    for tp, s in zip(points, samples, strict=True):
        assert_point(tp, s, discipline in RUN_LIKE)


def test_time_format_matches_utc() -> None:
    # guard the fast time formatter against the obvious implementation over a day boundary
    base = datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)
    samples = [
        Sample(offset_s=o, time=base + timedelta(seconds=o), heart_rate=90) for o in (0, 1, 2, 3.5)
    ]
    lap = Lap(start_offset_s=0, start=base, stats=Stats(duration_s=4))
    data = dump_tcx(with_samples(samples, start=base, laps=[lap]))
    times = [tp.text for tp in parse(data).findall(".//t:Trackpoint/t:Time", NS)]
    assert times == [
        "2026-12-31T23:59:58Z",
        "2026-12-31T23:59:59Z",
        "2027-01-01T00:00:00Z",
        "2027-01-01T00:00:01.5Z",
    ]


@settings(max_examples=200, deadline=None)
@given(
    ref=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones()
    ),
    deltas=st.lists(
        st.tuples(st.integers(-400, 400), st.integers(0, 86_400 * 10**6 - 1)),
        min_size=1,
        max_size=20,
    ),
    zone=st.sampled_from([None, UTC, timezone(timedelta(hours=-5))]) | st.timezones(),
)
@example(
    ref=datetime(2026, 1, 1, 12, tzinfo=ZoneInfo("America/Chicago")),
    deltas=[(180, 0), (0, 500_000)],
    zone=None,
)
def test_fast_time_formatter_matches_the_obvious_one(
    ref: datetime, deltas: list[tuple[int, int]], zone: tzinfo | None
) -> None:
    # zone None: the times share ref's own tzinfo object, where datetime subtraction ignores
    # the zone (wrong across a DST change unless the formatter works in UTC)
    times = [ref + timedelta(days=days, microseconds=us) for days, us in deltas]
    if zone is not None:
        times = [t.astimezone(zone) for t in times]
    expected = []
    for t in times:
        u = t.astimezone(UTC)
        frac = f".{u.microsecond:06d}".rstrip("0") if u.microsecond else ""
        expected.append(u.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z")
    assert UtcFormatter(ref).many(times) == expected
    assert [utc_iso(t) for t in times] == expected
