"""GPS ``location_data`` for outdoor workouts.

Like Peloton's, the track is recorded once per second independently of the metric samples: it
starts at offset 0, keeps going through seconds the samples dropped, and loses the signal for a
while (an ``is_gap`` segment holding only the two ends of the gap). So the coordinate count
differs from the sample count and clients must join on ``seconds_offset_from_start``.
"""

from __future__ import annotations

import math
import random
from typing import Any

from service.peloton.sandbox.catalog import METRES_PER_UNIT, TRACK_ORIGINS
from service.peloton.sandbox.series import Series
from service.peloton.sandbox.specs import WorkoutSpec, derive, hex_id

_M_PER_DEG_LAT = 111_320.0


def _per_second_speed(series: Series, end: int) -> list[float]:
    """m/s for every second 0..end, holding the last sample's speed through dropped seconds."""
    speeds, j, current = [], 0, 0.0
    for t in range(end + 1):
        while j < len(series.offsets) and series.offsets[j] <= t:
            current = series.speed_mps[j]
            j += 1
        speeds.append(current if t >= series.offsets[0] else 0.0)
    return speeds


def _track(rng: random.Random, spec: WorkoutSpec, speeds: list[float]) -> list[tuple[float, float]]:
    lat, lon, _ = TRACK_ORIGINS.get(spec.timezone, (40.7812, -73.9665, 40.0))
    lat, lon = lat + rng.uniform(-0.02, 0.02), lon + rng.uniform(-0.02, 0.02)
    heading = rng.uniform(0, 2 * math.pi)
    points = []
    for v in speeds:
        points.append((lat, lon))
        heading += rng.gauss(0, 0.04) + (
            rng.choice((-1, 1)) * math.pi / 2 if rng.random() < 0.003 else 0
        )
        lat += v * math.cos(heading) / _M_PER_DEG_LAT
        lon += v * math.sin(heading) / (_M_PER_DEG_LAT * math.cos(math.radians(lat)))
    return points


def location_data(spec: WorkoutSpec, series: Series) -> list[dict[str, Any]]:
    """The ``location_data`` segments of an outdoor workout (``[]`` if nothing was recorded)."""
    rng = random.Random(derive(spec.seed, "gps"))
    end = spec.recorded
    if end < 2:
        return []
    speeds = _per_second_speed(series, end)
    points = _track(rng, spec, speeds)
    unit = "mi" if spec.user.units == "imperial" else rng.choice(("km", "km", "km", "m"))
    per_unit = METRES_PER_UNIT[unit]
    cumulative, total = [], 0.0
    for v in speeds:
        cumulative.append(total)
        total += v
    gap_len = rng.randint(8, 40) if end > 120 else 0
    gap_start = rng.randint(end // 4, end // 2) if gap_len else end + 1
    gap_end = gap_start + gap_len  # seconds gap_start+1 .. gap_end-2 have no fix

    def coordinate(t: int, accuracy: float) -> dict[str, Any]:
        lat, lon = points[t]
        distance = cumulative[t] / per_unit
        return {
            "accuracy": accuracy,
            "distance": round(distance, 1 if unit == "m" else 3),
            "distance_display_unit": unit,
            "latitude": round(lat, 6),
            "longitude": round(lon, 6),
            "seconds_offset_from_start": t,
        }

    class_segments = [(s.segment_id, s.start, s.start + s.length) for s in spec.ride.segments]
    spans = class_segments or [(hex_id(rng), 0, end + 1)]
    segments: list[dict[str, Any]] = []
    for segment_id, start, stop in spans:
        stop = min(stop, end + 1)
        pieces = [(False, start, stop)]
        if start < gap_start < stop:
            pieces = [(False, start, gap_start), (True, gap_start, gap_end), (False, gap_end, stop)]
        for is_gap, a, b in pieces:
            b = min(b, stop)
            if is_gap:
                ends = sorted({a, min(b, end + 1) - 1})
                coords = [coordinate(t, float(rng.randint(40, 90))) for t in ends]
            else:
                coords = [coordinate(t, float(rng.randint(3, 16))) for t in range(a, b)]
            if coords:
                segments.append({"segment_id": segment_id, "is_gap": is_gap, "coordinates": coords})
    count = sum(len(s["coordinates"]) for s in segments)
    if count == len(series.offsets) and len(segments[-1]["coordinates"]) > 1:
        segments[-1]["coordinates"].pop()  # the counts must never line up by chance
    return segments
