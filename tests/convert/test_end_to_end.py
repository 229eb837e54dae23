"""Bundle in, every format out: each file validated or decoded strictly, then its values
compared with the *input bundle* (not with the intermediate model)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import gpxpy
import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from service.convert.formats import Format, render_all
from service.convert.json_format import dump_json
from service.convert.model import Activity
from service.convert.peloton import parse_bundle
from service.convert.units import DISTANCE_TO_M
from tests.convert.bundles import coordinates, make_bundle, metric, segment, summary
from tests.convert.fitcheck import decode
from tests.convert.strategies import bundles
from tests.convert.xsd import validate_gpx, validate_tcx

TCX = "{http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2}"
TPX = "{http://www.garmin.com/xmlschemas/ActivityExtension/v2}"


def _values(bundle: dict[str, Any], slug: str) -> dict[float, float]:
    """Recorded (non-null; HR also non-zero) values of a metric by offset."""
    graph = bundle["performance_graph"]
    for m in graph["metrics"]:
        if m["slug"] == slug:
            return {
                off: v
                for off, v in zip(graph["seconds_since_pedaling_start"], m["values"], strict=True)
                if v is not None and not (slug == "heart_rate" and v == 0)
            }
    return {}


def _start(bundle: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(bundle["workout"]["start_time"], tz=UTC)


def _summary_distance(bundle: dict[str, Any]) -> float | None:
    for s in bundle["performance_graph"]["summaries"]:
        if s["slug"] == "distance":
            return float(s["value"]) * DISTANCE_TO_M[s["display_unit"]]
    return None


def _zulu(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_tcx(bundle: dict[str, Any], data: bytes, act: Activity) -> None:
    validate_tcx(data)
    root = etree.fromstring(data)
    start = _start(bundle)
    assert root.findtext(f".//{TCX}Activity/{TCX}Id") == _zulu(start)
    points = root.findall(f".//{TCX}Trackpoint")
    times = [p.findtext(f"{TCX}Time") for p in points]
    by_time = dict(zip(times, points, strict=True))
    offsets = bundle["performance_graph"]["seconds_since_pedaling_start"]
    assert {_zulu(start + timedelta(seconds=o)) for o in offsets} <= set(times)
    hr = _values(bundle, "heart_rate")
    watts = _values(bundle, "output")
    for off in offsets:
        p = by_time[_zulu(start + timedelta(seconds=off))]
        got_hr = p.findtext(f"{TCX}HeartRateBpm/{TCX}Value")
        assert (int(got_hr) if got_hr else None) == (round(hr[off]) if off in hr else None)
        got_w = p.findtext(f".//{TPX}Watts")
        assert (int(got_w) if got_w else None) == (round(watts[off]) if off in watts else None)
    laps = root.findall(f".//{TCX}Lap")
    assert [lap.get("StartTime") for lap in laps] == [_zulu(lap.start) for lap in act.laps]
    total = _summary_distance(bundle)
    dists = [float(d) for d in (p.findtext(f"{TCX}DistanceMeters") for p in points) if d]
    if total and dists and dists[-1] > 0:
        assert dists[-1] == pytest.approx(total, rel=0.005)
        lap_total = sum(float(lap.findtext(f"{TCX}DistanceMeters") or 0) for lap in laps)
        assert lap_total == pytest.approx(total, rel=0.005)


def check_gpx(bundle: dict[str, Any], data: bytes) -> None:
    validate_gpx(data)
    gpx = gpxpy.parse(data.decode())
    start = _start(bundle)
    want = {
        start + timedelta(seconds=c["seconds_offset_from_start"]): (c["latitude"], c["longitude"])
        for loc in bundle["performance_graph"]["location_data"]
        if not loc["is_gap"]
        for c in loc["coordinates"]
    }
    got = {
        p.time: (p.latitude, p.longitude)
        for track in gpx.tracks
        for seg in track.segments
        for p in seg.points
    }
    assert set(got) == set(want)
    for t, (lat, lon) in want.items():
        assert got[t] == pytest.approx((lat, lon), abs=1e-7)


def check_fit(bundle: dict[str, Any], data: bytes, act: Activity) -> None:
    fit = decode(data)
    start = _start(bundle)
    records = fit.records
    if act.samples:
        assert len(records) == len(act.samples)
    hr = _values(bundle, "heart_rate")
    watts = _values(bundle, "output")
    graph = bundle["performance_graph"]
    if all(float(o).is_integer() for o in graph["seconds_since_pedaling_start"]):
        by_time = {r["timestamp"]: r for r in records}
        for off in graph["seconds_since_pedaling_start"]:
            r = by_time[start + timedelta(seconds=off)]
            assert r.get("heart_rate") == (round(hr[off]) if off in hr else None)
            assert r.get("power") == (round(watts[off]) if off in watts else None)
    session = fit.one("session")
    assert session["start_time"] == start
    assert len(fit.all("lap")) == len(act.laps)
    total = _summary_distance(bundle)
    if total and any(s.distance for s in act.samples):
        assert session["total_distance"] == pytest.approx(total, rel=0.005, abs=0.01)


def check_all(bundle: dict[str, Any]) -> None:
    act = parse_bundle(bundle)
    files = render_all(act)
    assert set(files) == {Format.TCX, Format.FIT, Format.JSON} | (
        {Format.GPX} if act.has_gps else set()
    )
    check_tcx(bundle, files[Format.TCX], act)
    check_fit(bundle, files[Format.FIT], act)
    if act.has_gps:
        check_gpx(bundle, files[Format.GPX])
    assert Activity.model_validate_json(files[Format.JSON]) == act
    # deterministic: a second conversion gives the same bytes
    assert render_all(parse_bundle(bundle)) == files


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bundles(max_samples=90))
def test_generated_bundles_convert_to_valid_faithful_files(bundle: dict[str, Any]) -> None:
    check_all(bundle)


def test_hour_long_outdoor_run_with_every_metric() -> None:
    n = 3600
    offsets = [float(o) for o in range(1, n + 1)]
    speeds = [6.0 + (o % 60) / 30 for o in range(n)]
    metrics = [
        metric("heart_rate", "bpm", [0, 0, *[120 + o % 40 for o in range(2, n)]]),
        metric(
            "pace",
            "min/mi",
            [60 / s for s in speeds],
            alternatives=[metric("speed", "mph", speeds)],
        ),
        metric("altitude", "ft", [100 + (o % 300) / 3 for o in range(n)]),
    ]
    pts = [(o, 40.7 + o * 1e-5, -74.0 + o * 1e-5) for o in offsets if not 1500 < o < 1600]
    loc = [
        {"is_gap": False, "coordinates": coordinates([p for p in pts if p[0] <= 1500])},
        {"is_gap": False, "coordinates": coordinates([p for p in pts if p[0] >= 1600])},
    ]
    distance = sum(speeds) / 3600
    bundle = make_bundle(
        offsets=offsets,
        metrics=metrics,
        location_data=loc,
        discipline="running",
        device_type="iPhone",
        summaries=[summary("distance", "mi", round(distance, 2)), summary("calories", "kcal", 700)],
        segments=[segment("Warmup", 0, 600), segment("Run", 600, 2700), segment("Cool", 3300, 300)],
    )
    check_all(bundle)
    act = parse_bundle(bundle)
    assert act.is_outdoor
    assert len({s.track_segment for s in act.samples if s.track_segment is not None}) == 2


def test_gpx_is_refused_for_indoor_workouts_with_a_clear_message() -> None:
    from service.convert.formats import render
    from service.errors import UnsupportedFormat

    act = parse_bundle(make_bundle(offsets=[1, 2], metrics=[metric("output", "watts", [1, 2])]))
    with pytest.raises(UnsupportedFormat, match="workout has no GPS track; use tcx or fit"):
        render(act, Format.GPX)


def test_json_is_the_documented_versioned_model() -> None:
    act = parse_bundle(make_bundle(offsets=[1, 2], metrics=[metric("output", "watts", [1, 2])]))
    doc = dump_json(act)
    assert doc.startswith(b'{"schema_version":"1.1"')
    assert b"null" not in doc  # not recorded means absent
