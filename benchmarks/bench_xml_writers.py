"""Time the TCX and GPX writers on an hour of 1 Hz data, next to the slower ways not taken.

Run: ``.venv/bin/python -m benchmarks.bench_xml_writers`` (prints the best of several runs, ms).
Targets: TCX <= 10 ms for a 60-minute ride, GPX <= 15 ms for a 60-minute outdoor run.
"""

from __future__ import annotations

import os
import timeit
from collections.abc import Callable
from xml.etree.ElementTree import Element, SubElement

import gpxpy.gpx
from lxml import etree

from service.convert.gpx import dump_gpx
from service.convert.model import Activity, Discipline
from service.convert.tcx import dump_tcx
from tests.convert.activities import build

TCD = "{http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2}"
AX = "{http://www.garmin.com/xmlschemas/ActivityExtension/v2}"
TPX = "{http://www.garmin.com/xmlschemas/TrackPointExtension/v2}"
PWR = "{http://www.garmin.com/xmlschemas/PowerExtension/v1}"


def best_ms(fn: Callable[[], object], number: int = 10, repeat: int = 7) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1000


def lxml_trackpoints(activity: Activity) -> bytes:
    """The TCX Track built as an lxml tree (points only: a lower bound for that approach)."""
    track = etree.Element(TCD + "Track")
    for s in activity.samples:
        tp = etree.SubElement(track, TCD + "Trackpoint")
        etree.SubElement(tp, TCD + "Time").text = s.time.isoformat().replace("+00:00", "Z")
        if s.distance is not None:
            etree.SubElement(tp, TCD + "DistanceMeters").text = f"{s.distance:.2f}"
        if s.heart_rate is not None:
            hr = etree.SubElement(tp, TCD + "HeartRateBpm")
            etree.SubElement(hr, TCD + "Value").text = str(s.heart_rate)
        if s.cadence is not None:
            etree.SubElement(tp, TCD + "Cadence").text = str(round(s.cadence))
        ext = etree.SubElement(etree.SubElement(tp, TCD + "Extensions"), AX + "TPX")
        if s.speed is not None:
            etree.SubElement(ext, AX + "Speed").text = f"{s.speed:.3f}"
        if s.power is not None:
            etree.SubElement(ext, AX + "Watts").text = str(round(s.power))
    result: bytes = etree.tostring(track)
    return result


def gpxpy_only(activity: Activity, prettyprint: bool) -> str:
    """GPX written entirely by gpxpy: GPXTrackPoint objects with ElementTree extensions."""
    gpx = gpxpy.gpx.GPX()
    gpx.nsmap = {"gpxtpx": TPX[1:-1], "gpxpx": PWR[1:-1]}
    track = gpxpy.gpx.GPXTrack()
    segment = gpxpy.gpx.GPXTrackSegment()
    for s in activity.samples:
        if not s.has_position:
            continue
        point = gpxpy.gpx.GPXTrackPoint(s.latitude, s.longitude, elevation=s.altitude, time=s.time)
        tpx = Element(TPX + "TrackPointExtension")
        if s.heart_rate is not None:
            SubElement(tpx, TPX + "hr").text = str(s.heart_rate)
        if s.cadence is not None:
            SubElement(tpx, TPX + "cad").text = str(round(s.cadence / 2))
        if s.speed is not None:
            SubElement(tpx, TPX + "speed").text = f"{s.speed:.3f}"
        point.extensions.append(tpx)
        if s.power is not None:
            power = Element(PWR + "PowerInWatts")
            power.text = str(round(s.power))
            point.extensions.append(power)
        segment.points.append(point)
    track.segments.append(segment)
    gpx.tracks.append(track)
    xml: str = gpx.to_xml(version="1.1", prettyprint=prettyprint)
    return xml


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    ride = build(seconds=3600, laps=6)
    run = build(discipline=Discipline.RUNNING, seconds=3600, gps=True, altitude=True, laps=6)
    points = sum(s.has_position for s in run.samples)
    print(f"TCX  60-min ride, {len(ride.samples)} samples:")
    print(f"  dump_tcx (string building)        {best_ms(lambda: dump_tcx(ride)):7.2f} ms")
    print(f"  lxml tree, trackpoints only       {best_ms(lambda: lxml_trackpoints(ride)):7.2f} ms")
    print(f"TCX  60-min outdoor run with GPS:   {best_ms(lambda: dump_tcx(run)):7.2f} ms")
    print(f"GPX  60-min outdoor run, {points} points:")
    print(f"  dump_gpx (gpxpy document + points) {best_ms(lambda: dump_gpx(run)):6.2f} ms")
    for pretty in (False, True):
        ms = best_ms(lambda: gpxpy_only(run, pretty), number=3)  # noqa: B023
        print(f"  gpxpy only, prettyprint={pretty!s:5}     {ms:7.2f} ms")
    print(f"TCX size {len(dump_tcx(ride)):,} B, GPX size {len(dump_gpx(run)):,} B")


if __name__ == "__main__":
    main()
