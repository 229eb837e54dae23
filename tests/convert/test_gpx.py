"""GPX writer: strict schema validity, then every value read back with gpxpy and compared."""

from __future__ import annotations

import itertools
import math
import re
from datetime import timedelta, timezone
from typing import Any

import gpxpy
import gpxpy.gpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.convert.gpx import dump_gpx
from service.convert.model import Activity, Discipline, Sample
from service.errors import ConversionError, UnsupportedFormat
from tests.convert.activities import START, build
from tests.convert.xsd import validate_gpx

TPX = "{http://www.garmin.com/xmlschemas/TrackPointExtension/v2}"
PWR = "{http://www.garmin.com/xmlschemas/PowerExtension/v1}"
RUN_LIKE = {Discipline.RUNNING, Discipline.WALKING, Discipline.TREAD_BOOTCAMP}

CASES = {
    "outdoor_run": lambda: build(
        discipline=Discipline.RUNNING, gps=True, altitude=True, outdoor=True, power=False
    ),
    "outdoor_walk_holes": lambda: build(
        discipline=Discipline.WALKING, gps=True, altitude=True, outdoor=True, null_every=6
    ),
    "gps_ride_all_metrics": lambda: build(gps=True, altitude=True),
    "gps_no_altitude_every_5_from_7": lambda: build(
        discipline=Discipline.RUNNING, gps=True, every_n=5, first_offset=7
    ),
    "gps_only": lambda: build(
        discipline=Discipline.RUNNING,
        gps=True,
        heart_rate=False,
        power=False,
        cadence=False,
        speed=False,
    ),
    "power_only": lambda: build(gps=True, heart_rate=False, cadence=False, speed=False),
}


@pytest.fixture(params=sorted(CASES))
def activity(request: pytest.FixtureRequest) -> Activity:
    return CASES[request.param]()


def segments_of(samples: list[Sample]) -> list[list[Sample]]:
    """The segmentation the writer promises, computed independently: positioned samples grouped
    by consecutive runs that share track_segment and are not interrupted by unpositioned ones."""
    keyed = [(s.track_segment if s.has_position else None, s) for s in samples]
    runs = []
    for key, group in itertools.groupby(keyed, key=lambda pair: pair[0]):
        if key is not None:
            runs.append([s for _, s in group])
    return runs


def extension_values(point: gpxpy.gpx.GPXTrackPoint) -> dict[str, float | None]:
    values: dict[str, float | None] = {"hr": None, "cad": None, "speed": None, "watts": None}
    for ext in point.extensions:
        if ext.tag == TPX + "TrackPointExtension":
            tags = [child.tag for child in ext]
            order = [TPX + name for name in ("hr", "cad", "speed")]
            assert tags == [t for t in order if t in tags], "TrackPointExtension children order"
            assert tags, "empty TrackPointExtension"
            for child in ext:
                values[child.tag.removeprefix(TPX)] = float(child.text)
        elif ext.tag == PWR + "PowerInWatts":
            values["watts"] = float(ext.text)
        else:
            raise AssertionError(f"unexpected extension {ext.tag}")
    return values


def assert_point(point: gpxpy.gpx.GPXTrackPoint, s: Sample, running: bool) -> None:
    assert s.latitude is not None
    assert s.longitude is not None
    assert point.latitude == pytest.approx(s.latitude, abs=5.1e-8)
    assert point.longitude == pytest.approx(s.longitude, abs=5.1e-8)
    if s.altitude is None:
        assert point.elevation is None
    else:
        assert point.elevation == pytest.approx(s.altitude, abs=5.1e-3)
    assert point.time == s.time
    got = extension_values(point)
    cad = s.cadence
    want = {
        "hr": s.heart_rate,
        "cad": None if cad is None else round(cad / 2 if running else cad),
        "speed": s.speed,
        "watts": None if s.power is None else round(s.power),
    }
    for key, expected in want.items():
        if expected is None:
            assert got[key] is None, f"{key} written for a missing value at {s.offset_s}s"
        else:
            assert got[key] == pytest.approx(expected, abs=5.1e-4), key
    if all(v is None for v in want.values()):
        assert point.extensions == []


def test_output_is_strictly_valid(activity: Activity) -> None:
    data = dump_gpx(activity)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    validate_gpx(data)


def test_points_round_trip(activity: Activity) -> None:
    gpx = gpxpy.parse(dump_gpx(activity).decode())
    running = activity.discipline in RUN_LIKE
    assert len(gpx.tracks) == 1
    track = gpx.tracks[0]
    expected = segments_of(activity.samples)
    assert len(track.segments) == len(expected)
    positioned = [s for s in activity.samples if s.has_position]
    assert sum(len(seg.points) for seg in track.segments) == len(positioned)
    for seg, samples in zip(track.segments, expected, strict=True):
        assert len(seg.points) == len(samples)
        for point, s in zip(seg.points, samples, strict=True):
            assert_point(point, s, running)


def test_one_segment_per_track_segment() -> None:
    activity = build(discipline=Discipline.RUNNING, gps=True, seconds=600)
    distinct = {s.track_segment for s in activity.samples if s.track_segment is not None}
    gpx = gpxpy.parse(dump_gpx(activity).decode())
    assert len(distinct) == 2
    assert len(gpx.tracks[0].segments) == 2


def test_metadata_and_track(activity: Activity) -> None:
    data = dump_gpx(activity)
    gpx = gpxpy.parse(data.decode())
    assert gpx.version == "1.1"
    assert gpx.creator == "pelosync"
    assert gpx.name == activity.title
    assert gpx.time == activity.start
    assert gpx.tracks[0].name == activity.title
    assert gpx.tracks[0].type == activity.discipline.value
    assert b"<time>2026-03-14T15:09:26Z</time>" in data


def test_deterministic(activity: Activity) -> None:
    assert dump_gpx(activity) == dump_gpx(activity.model_copy(deep=True))


def test_no_gps_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormat, match=r"^workout has no GPS track; use tcx or fit$"):
        dump_gpx(build(gps=False))


def with_samples(samples: list[Sample], **update: Any) -> Activity:
    return build(gps=True, seconds=60, laps=1).model_copy(update={"samples": samples, **update})


def sample(offset: float, segment: int | None = 0, **values: Any) -> Sample:
    position: dict[str, Any] = {}
    if segment is not None:
        position = {"latitude": 40.0 + offset * 1e-4, "longitude": -74.0, "track_segment": segment}
    return Sample(offset_s=offset, time=START + timedelta(seconds=offset), **position, **values)


def test_unpositioned_samples_split_a_segment_and_are_not_points() -> None:
    samples = [
        sample(1),
        sample(2),
        sample(3, segment=None, heart_rate=100),
        sample(4),
        sample(5, segment=1),
        sample(6, segment=0),
    ]
    data = dump_gpx(with_samples(samples))
    validate_gpx(data)
    segments = gpxpy.parse(data.decode()).tracks[0].segments
    assert [[p.time for p in seg.points] for seg in segments] == [
        [START + timedelta(seconds=o) for o in offsets] for offsets in ([1, 2], [4], [5], [6])
    ]


def test_values_capped_to_schema_ranges() -> None:
    samples = [
        sample(1, heart_rate=300, cadence=400.0, power=70000.0),
        sample(2, heart_rate=0, cadence=-3.0, power=-5.0),
    ]
    data = dump_gpx(with_samples(samples, discipline=Discipline.CYCLING))
    validate_gpx(data)
    first, second = gpxpy.parse(data.decode()).tracks[0].segments[0].points
    assert extension_values(first) == {"hr": 255, "cad": 254, "speed": None, "watts": 65535}
    assert extension_values(second) == {"hr": None, "cad": 0, "speed": None, "watts": 0}


def test_times_are_utc_with_z() -> None:
    minus5 = START.astimezone(timezone(timedelta(hours=-5)))
    samples = [
        Sample(
            offset_s=0.5,
            time=minus5 + timedelta(seconds=0.5),
            latitude=1.0,
            longitude=2.0,
            track_segment=0,
        )
    ]
    data = dump_gpx(with_samples(samples, start=minus5))
    validate_gpx(data)
    assert b"<time>2026-03-14T15:09:26.5Z</time>" in data
    assert b"<time>2026-03-14T15:09:26Z</time>" in data  # metadata


def test_free_text_is_escaped_and_cleaned() -> None:
    activity = build(gps=True, seconds=10).model_copy(update={"title": "A & <B>\x07"})
    data = dump_gpx(activity)
    validate_gpx(data)
    assert gpxpy.parse(data.decode()).name == "A & <B>"


@pytest.mark.parametrize("field", ["power", "speed", "altitude", "cadence"])
def test_non_finite_values_are_rejected_by_name(field: str) -> None:
    activity = with_samples([sample(1), sample(2, **{field: math.nan}, segment=0)])
    with pytest.raises(ConversionError, match=f"offset 2s has a non-finite {field}"):
        dump_gpx(activity)


def test_impossible_position_is_rejected() -> None:
    bad = Sample(offset_s=1, time=START, latitude=10.0, longitude=200.0, track_segment=0)
    with pytest.raises(ConversionError, match="impossible position"):
        dump_gpx(with_samples([bad]))


# --- the validator itself must be strict ------------------------------------------------------

GOOD = dump_gpx(build(gps=True, seconds=20, laps=1))


def first_sub(pattern: bytes, repl: bytes) -> bytes:
    bad, count = re.subn(pattern, repl, GOOD, count=1)
    assert count == 1
    return bad


BAD = {
    # a bare <power>, as some sites write it, is in no schema
    "bare_power": (rb"<gpxpx:PowerInWatts>(\d+)</gpxpx:PowerInWatts>", rb"<power>\1</power>"),
    "hr_0": (rb"<gpxtpx:hr>\d+<", b"<gpxtpx:hr>0<"),  # minimum 1
    "hr_300": (rb"<gpxtpx:hr>\d+<", b"<gpxtpx:hr>300<"),  # unsignedByte
    "cad_255": (rb"<gpxtpx:cad>\d+<", b"<gpxtpx:cad>255<"),  # maximum 254
    "speed_before_hr": (
        rb"(<gpxtpx:hr>\d+</gpxtpx:hr>)(<gpxtpx:cad>\d+</gpxtpx:cad>)(<gpxtpx:speed>[\d.]+</gpxtpx:speed>)",
        rb"\3\1\2",
    ),
    # misspelled extension element: only strict processing rejects it
    "misspelled": (
        rb"<gpxtpx:TrackPointExtension>(.*?)</gpxtpx:TrackPointExtension>",
        rb"<gpxtpx:TrackPointExtensions>\1</gpxtpx:TrackPointExtensions>",
    ),
    "lat_91": (rb'lat="[\d.]+"', b'lat="91.0"'),
    "time_without_T": (rb"<time>2026-03-14T", b"<time>2026-03-14 "),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_validator_rejects(name: str) -> None:
    bad = first_sub(*BAD[name])
    validate_gpx(GOOD)
    with pytest.raises(AssertionError):
        validate_gpx(bad)


# --- property: random positioned samples with random holes ------------------------------------


@st.composite
def random_samples(draw: st.DrawFn) -> list[Sample]:
    count = draw(st.integers(min_value=1, max_value=40))
    offsets = sorted(draw(st.sets(st.integers(0, 4000), min_size=count, max_size=count)))
    out = []
    for i, off in enumerate(offsets):
        positioned = i == 0 or draw(st.integers(0, 4)) > 0
        out.append(
            Sample(
                offset_s=off,
                time=START + timedelta(seconds=off),
                heart_rate=draw(st.none() | st.integers(1, 255)),
                power=draw(st.none() | st.floats(0, 3000)),
                cadence=draw(st.none() | st.floats(0, 254)),
                speed=draw(st.none() | st.floats(0, 30)),
                latitude=draw(st.floats(-90, 90)) if positioned else None,
                longitude=draw(st.floats(-180, 179.9999)) if positioned else None,
                altitude=draw(st.none() | st.floats(-500, 9000)),
                track_segment=draw(st.integers(0, 2)) if positioned else None,
            )
        )
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    samples=random_samples(),
    discipline=st.sampled_from([Discipline.CYCLING, Discipline.RUNNING]),
)
def test_property_random_holes_round_trip(samples: list[Sample], discipline: Discipline) -> None:
    activity = with_samples(samples, discipline=discipline)
    data = dump_gpx(activity)
    validate_gpx(data)
    segments = gpxpy.parse(data.decode()).tracks[0].segments
    expected = segments_of(samples)
    assert len(segments) == len(expected)
    for seg, runs in zip(segments, expected, strict=True):
        assert len(seg.points) == len(runs)
        for point, s in zip(seg.points, runs, strict=True):
            assert_point(point, s, discipline in RUN_LIKE)


def test_longitude_180_is_written_as_minus_180() -> None:
    point = Sample(offset_s=1, time=START, latitude=0.0, longitude=180.0, track_segment=0)
    data = dump_gpx(with_samples([point]))
    validate_gpx(data)
    assert b'lon="-180.0000000"' in data
