"""Hand-built canonical activities for writer tests (no parser involved)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from service.convert.model import (
    Activity,
    Device,
    Discipline,
    Lap,
    Sample,
    Source,
    Stats,
    Summary,
)

START = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


def _stats(samples: list[Sample], duration: float, calories: float | None) -> Stats:
    hr = [s.heart_rate for s in samples if s.heart_rate is not None]
    pw = [s.power for s in samples if s.power is not None]
    cad = [s.cadence for s in samples if s.cadence is not None]
    sp = [s.speed for s in samples if s.speed is not None]
    dist = [s.distance for s in samples if s.distance is not None]
    return Stats(
        duration_s=duration,
        distance_m=(dist[-1] - (dist[0] - 0)) if dist else None,
        calories_kcal=calories,
        avg_heart_rate=round(sum(hr) / len(hr)) if hr else None,
        max_heart_rate=max(hr) if hr else None,
        avg_power=sum(pw) / len(pw) if pw else None,
        max_power=max(pw) if pw else None,
        avg_cadence=sum(cad) / len(cad) if cad else None,
        max_cadence=max(cad) if cad else None,
        avg_speed=sum(sp) / len(sp) if sp else None,
        max_speed=max(sp) if sp else None,
    )


def build(
    *,
    discipline: Discipline = Discipline.CYCLING,
    seconds: int = 600,
    every_n: int = 1,
    first_offset: int = 1,
    heart_rate: bool = True,
    power: bool = True,
    cadence: bool = True,
    speed: bool = True,
    gps: bool = False,
    altitude: bool = False,
    laps: int = 3,
    calories: float = 123.0,
    outdoor: bool = False,
    null_every: int = 0,
    device_type: str = "home_bike_v1",
    device_name: str = "Peloton Bike",
) -> Activity:
    """A deterministic synthetic activity with the chosen metrics."""
    samples: list[Sample] = []
    distance = 0.0
    prev = 0.0
    for i, off in enumerate(range(first_offset, seconds + 1, every_n)):
        hole = null_every and i % null_every == 3
        spd = 6.5 + 1.5 * math.sin(off / 60) if speed else None
        if spd is not None and not hole:
            distance += spd * (off - prev)
        prev = off
        seg = None
        lat = lon = None
        if gps and not (seconds * 0.45 < off < seconds * 0.5):  # a hole in the track
            seg = 0 if off <= seconds * 0.45 else 1
            lat = 40.7128 + off * 1e-5
            lon = -74.0060 + math.sin(off / 100) * 1e-3
        samples.append(
            Sample(
                offset_s=off,
                time=START + timedelta(seconds=off),
                heart_rate=None if (not heart_rate or hole) else 95 + (off % 80),
                power=None if (not power or hole) else float(100 + (off * 7) % 150),
                cadence=None if (not cadence or hole) else float(70 + off % 30),
                speed=None if hole else spd,
                distance=distance if speed else None,
                latitude=lat,
                longitude=lon,
                altitude=(12.0 + (off % 50) * 0.3) if altitude else None,
                track_segment=seg,
            )
        )
    lap_len = seconds / max(laps, 1)
    lap_list = []
    for k in range(max(laps, 1)):
        lo, hi = k * lap_len, (k + 1) * lap_len
        in_lap = [
            s for s in samples if lo <= s.offset_s < hi or (k == laps - 1 and s.offset_s == hi)
        ]
        lap_list.append(
            Lap(
                name=f"Segment {k + 1}",
                start_offset_s=lo,
                start=START + timedelta(seconds=lo),
                stats=_stats(in_lap, lap_len, calories / max(laps, 1)),
            )
        )
    whole = _stats(samples, seconds, calories)
    return Activity(
        source=Source(workout_id="0123456789abcdef0123456789abcdef", every_n=every_n),
        discipline=discipline,
        peloton_discipline=discipline.value,
        is_outdoor=outdoor,
        title="20 min Test Ride",
        instructor="Test Instructor",
        device=Device(type=device_type, name=device_name, platform="home_bike"),
        start=START,
        end=START + timedelta(seconds=seconds),
        timezone="America/Chicago",
        utc_offset_s=-5 * 3600,
        summary=Summary(**whole.model_dump(), total_work_j=61000.0 if power else None),
        laps=lap_list,
        samples=samples,
    )
