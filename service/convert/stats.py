"""Laps and statistics over spans of samples."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from service.convert.bundle import SegmentIn
from service.convert.model import Lap, Sample, Stats, Target


class LapBound(NamedTuple):
    """Where a lap starts (seconds into the workout), its name and the class's targets."""

    name: str | None
    start: float
    targets: tuple[Target, ...] = ()


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def span_stats(
    samples: Sequence[Sample],
    *,
    duration_s: float,
    distance_m: float | None,
    calories_kcal: float | None,
) -> Stats:
    """Averages and maxima of the recorded values in ``samples`` (missing values ignored)."""
    hr = [s.heart_rate for s in samples if s.heart_rate is not None]
    power = [s.power for s in samples if s.power is not None]
    cadence = [s.cadence for s in samples if s.cadence is not None]
    speed = [s.speed for s in samples if s.speed is not None]
    avg_hr = _mean([float(h) for h in hr])
    return Stats(
        duration_s=duration_s,
        distance_m=distance_m,
        calories_kcal=calories_kcal,
        avg_heart_rate=round(avg_hr) if avg_hr is not None else None,
        max_heart_rate=max(hr) if hr else None,
        avg_power=_mean(power),
        max_power=max(power) if power else None,
        avg_cadence=_mean(cadence),
        max_cadence=max(cadence) if cadence else None,
        avg_speed=_mean(speed),
        max_speed=max(speed) if speed else None,
    )


def lap_bounds(segments: Sequence[SegmentIn], end_offset: float) -> list[LapBound]:
    """(name, start offset) of each lap; laps are contiguous and cover [0, end_offset].

    Class segments become laps. A segment that starts after the workout ended (the user
    stopped early) is dropped; the first lap always starts at 0 and the last runs to the end,
    so the laps' times add up to the workout's.
    """
    starts: list[LapBound] = []
    for seg in sorted(segments, key=lambda s: s.start_time_offset):
        if seg.length <= 0 or seg.start_time_offset >= end_offset:
            continue
        start = max(seg.start_time_offset, 0.0)
        if starts and start <= starts[-1].start:
            continue
        starts.append(LapBound(seg.name, start))
    if not starts:
        return [LapBound(None, 0.0)]
    starts[0] = starts[0]._replace(start=0.0)
    return starts


def apportion(total: float | None, weights: list[float]) -> list[float | None]:
    """Split ``total`` by ``weights``; whole totals are split in whole numbers that add up."""
    if total is None:
        return [None] * len(weights)
    weight_sum = sum(weights)
    if weight_sum <= 0:
        first: list[float | None] = [total]
        return first + [0.0] * (len(weights) - 1)
    shares: list[float | None] = [total * w / weight_sum for w in weights]
    if float(total).is_integer():
        exact = [total * w / weight_sum for w in weights]
        floors = [int(s) for s in exact]
        left = int(total) - sum(floors)
        order = sorted(range(len(exact)), key=lambda i: (floors[i] - exact[i], i))
        for i in order[:left]:
            floors[i] += 1
        return [float(f) for f in floors]
    return shares


def build_laps(
    samples: list[Sample],
    bounds: list[LapBound],
    *,
    start: datetime,
    end_offset: float,
    calories_kcal: float | None,
) -> list[Lap]:
    """Laps over ``bounds`` with stats from the samples inside each."""
    edges = [b.start for b in bounds] + [end_offset]
    durations = [max(edges[i + 1] - edges[i], 0.0) for i in range(len(bounds))]
    calories = apportion(calories_kcal, durations)
    laps: list[Lap] = []
    cursor = 0
    distance_before = 0.0
    has_distance = any(s.distance is not None for s in samples)
    for i, (name, lo, targets) in enumerate(bounds):
        last = i == len(bounds) - 1
        inside: list[Sample] = []
        while cursor < len(samples) and (last or samples[cursor].offset_s < edges[i + 1]):
            inside.append(samples[cursor])
            cursor += 1
        distance = None
        if has_distance:
            ends = [s.distance for s in inside if s.distance is not None]
            lap_end = ends[-1] if ends else distance_before
            distance = max(lap_end - distance_before, 0.0)
            distance_before = lap_end
        laps.append(
            Lap(
                name=name,
                start_offset_s=lo,
                start=start + timedelta(seconds=lo),
                stats=span_stats(
                    inside,
                    duration_s=durations[i],
                    distance_m=distance,
                    calories_kcal=calories[i],
                ),
                targets=list(targets),
            )
        )
    return laps
