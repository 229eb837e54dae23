"""Converter speed: a 60-minute 1 Hz indoor ride, a 60-minute outdoor GPS run, a strength class.

Prints the median of repeated runs for parsing, each format, and the whole set (parse once,
write every possible format), plus gpxpy's own serialisation of the same GPS points as a
reference. Target: the whole set under 50 ms on one core.

    python -m benchmarks.convert [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import gpxpy.gpx

from service.convert.formats import FORMATS, possible_formats, render
from service.convert.model import Activity
from service.convert.peloton import parse_bundle
from service.peloton.sandbox import generate_bundle


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def gpxpy_reference(activity: Activity) -> Callable[[], str]:
    """gpxpy building and serialising the same points itself (with hr/cad/power extensions)."""

    def build() -> str:
        gpx = gpxpy.gpx.GPX()
        track = gpxpy.gpx.GPXTrack()
        gpx.tracks.append(track)
        segment = gpxpy.gpx.GPXTrackSegment()
        track.segments.append(segment)
        for s in activity.samples:
            if s.latitude is None or s.longitude is None:
                continue
            point = gpxpy.gpx.GPXTrackPoint(
                s.latitude, s.longitude, elevation=s.altitude, time=s.time
            )
            segment.points.append(point)
        return gpx.to_xml(version="1.1")

    return build


def bench(name: str, bundle: dict[str, Any], repeat: int) -> None:
    text = json.dumps(bundle)
    activity = parse_bundle(text)
    formats = possible_formats(activity)
    print(
        f"\n{name}: {len(activity.samples)} samples, {len(activity.laps)} laps, "
        f"{len(activity.sets)} sets, GPS={activity.has_gps}, formats={formats}"
    )
    parse = median_ms(lambda: parse_bundle(text), repeat)
    print(f"  parse bundle (JSON text -> model)   {parse:8.2f} ms")
    total_writers = 0.0
    for fmt in formats:
        ms = median_ms(lambda f=fmt: render(activity, f), repeat)  # type: ignore[misc]
        total_writers += ms
        size = len(render(activity, fmt))
        print(f"  {fmt.value:4} ({FORMATS[fmt].extension}) {size / 1024:8.1f} KiB   {ms:8.2f} ms")

    def whole() -> None:
        act = parse_bundle(text)
        for fmt in possible_formats(act):
            render(act, fmt)

    print(
        f"  whole set (parse once + all writers)  {median_ms(whole, repeat):8.2f} ms  (target < 50)"
    )
    if activity.has_gps:
        ref = median_ms(gpxpy_reference(activity), repeat)
        print(f"  reference: gpxpy alone, points only  {ref:8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    ride = generate_bundle(11, "cycling_class", duration=3600, heart_rate=True, every_n=1)
    run = generate_bundle(12, "outdoor_run", duration=3600, heart_rate=True, every_n=1)
    bench("60-min indoor ride, 1 Hz, HR+power+cadence+speed", ride, args.repeat)
    bench("60-min outdoor run, 1 Hz, GPS+altitude+HR", run, args.repeat)
    # The sandbox ride's laps follow its instructor's cues (dozens of laps and FIT workout
    # steps); a strength class has dozens of sets: class-driven messages must stay cheap too.
    strength = generate_bundle(4, "strength", duration=1800, heart_rate=True, every_n=1)
    bench("30-min strength class, 1 Hz HR, tracked sets", strength, args.repeat)


if __name__ == "__main__":
    main()
