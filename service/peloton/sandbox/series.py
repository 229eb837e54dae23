"""The one-second base series behind a performance graph.

Values are generated per second for ``0..recorded`` from an intensity plan (the class's
segments cut into intervals), then rounded exactly as Peloton publishes them. Summaries are
computed from these published values (``graph.py``), so anything a client derives from the
``every_n=1`` graph (distance from speed, averages, maxima) agrees with the summaries.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.peloton.sandbox.catalog import MPS_PER_SPEED_UNIT, TRACK_ORIGINS, unit_label
from service.peloton.sandbox.specs import WorkoutSpec, derive

Value = int | float | None


@dataclass(slots=True)
class Series:
    """Published values per metric slug, one per entry of ``offsets`` (seconds since start)."""

    offsets: list[int]
    values: dict[str, list[Value]] = field(default_factory=dict)
    #: Speed in m/s per offset, derived from the published (rounded) values.
    speed_mps: list[float] = field(default_factory=list)
    #: Seconds with heart rate 0 (strap not picked up yet).
    hr_missing: int = 0


def _plan(rng: random.Random, spec: WorkoutSpec) -> list[float]:
    """Intensity (0..1) for every second 0..duration, from the segments cut into intervals."""
    duration = spec.duration
    segments = spec.ride.segments or ()
    bounds = [(s.start, s.start + s.length, s.icon) for s in segments] or [(0, duration, "main")]
    level = [0.0] * (duration + 1)
    for start, end, icon in bounds:
        t = start
        while t < end:
            length = min(end - t, rng.randint(30, 240))
            if icon == "warmup":
                lvl = 0.45 + 0.2 * (t - start) / max(1, end - start)
            elif icon == "cooldown":
                lvl = 0.55 - 0.2 * (t - start) / max(1, end - start)
            else:
                lvl = rng.uniform(0.55, 1.0)
            for second in range(t, min(t + length, duration + 1)):
                level[second] = lvl
            t += length
    level[duration] = level[duration - 1] if duration else 0.6
    return level


def _scaled(raw: list[float], target: float, offsets: list[int]) -> list[int]:
    """``raw`` scaled so its mean over ``offsets`` is ``target``, as whole watts."""
    mean = sum(raw[t] for t in offsets) / len(offsets) if offsets else 0.0
    factor = target / mean if mean > 0 else 0.0
    return [max(0, round(v * factor)) for v in raw]


def _speed_in(mph: float, speed_unit: str) -> float:
    return mph if speed_unit == "mph" else mph * 1.609344


def _bike(rng: random.Random, spec: WorkoutSpec, plan: list[float], offsets: list[int]) -> Series:
    resistance, cadence = [], []
    cad = 35.0 if spec.ride.is_just_ride else 70.0
    res_level, cad_target, last_level = 30.0, 85.0, -1.0
    for lvl in plan:
        if lvl != last_level:  # a new interval: the instructor calls a new resistance/cadence
            climb = lvl > 0.8 and rng.random() < 0.4
            res_level = min(75.0, 15 + 40 * lvl + rng.uniform(-4, 4) + (10 if climb else 0))
            cad_target = rng.uniform(62, 75) if climb else rng.uniform(78, 105)
            last_level = lvl
        cad += (cad_target - cad) * 0.3 + rng.gauss(0, 1.2)
        cadence.append(max(0, round(cad)))
        resistance.append(round(res_level))
    raw = [c * (0.25 + 0.00075 * r * r) for c, r in zip(cadence, resistance, strict=True)]
    output = _scaled(raw, spec.avg_output, offsets)
    speed_unit = unit_label("speed", spec.user.units)
    speed = [round(_speed_in(3.45 * p ** (1 / 3), speed_unit), 1) if p else 0.0 for p in output]
    series = Series(offsets)
    series.values = {
        "output": [output[t] for t in offsets],
        "cadence": [cadence[t] for t in offsets],
        "resistance": [resistance[t] for t in offsets],
        "speed": [speed[t] for t in offsets],
    }
    series.speed_mps = [speed[t] * MPS_PER_SPEED_UNIT[speed_unit] for t in offsets]
    return series


def _moving_speeds(
    rng: random.Random, spec: WorkoutSpec, plan: list[float], *, belt: bool
) -> list[float]:
    """Display-unit speeds per second for a tread (0.1 steps, belt ramps) or outdoors (noisy)."""
    speed_unit = unit_label("speed", spec.user.units)
    low, high = spec.spec.speed_mph
    standstill = rng.randint(1, 3) + spec.first_offset
    speeds, current, target, last_level = [], 0.0, 0.0, -1.0
    stop_until = -1
    for t, lvl in enumerate(plan):
        if lvl != last_level:
            walk = spec.spec.walk_run and rng.random() < 0.5
            mph = rng.uniform(2.8, 3.8) if walk else low + (high - low) * (lvl - 0.45) / 0.55
            target = round(_speed_in(max(low * 0.8, mph) if not walk else mph, speed_unit), 1)
            last_level = lvl
        if not belt and t > 120 and stop_until < t and rng.random() < 0.002:
            stop_until = t + rng.randint(4, 15)  # waiting at a crossing: pace becomes null
        if t < standstill or t <= stop_until:
            current = 0.0
        elif belt:
            step = 0.5 if speed_unit == "mph" else 0.8
            current = round(current + max(-step, min(step, target - current)), 1)
        else:
            current = max(0.0, target * (1 + rng.gauss(0, 0.03)) if current else target * 0.6)
        speeds.append(round(current, 1))
    return speeds


def _pace(speeds: list[float]) -> list[Value]:
    return [round(60.0 / v, 2) if v > 0 else None for v in speeds]


def _tread(rng: random.Random, spec: WorkoutSpec, plan: list[float], offsets: list[int]) -> Series:
    speeds = _moving_speeds(rng, spec, plan, belt=True)
    top = 12.0 if spec.kind == "tread_walk" else 4.0
    incline, last_level, grade = [], -1.0, 0.0
    for lvl in plan:
        if lvl != last_level:
            grade = round(rng.uniform(0, top) * 2) / 2
            last_level = lvl
        incline.append(grade)
    speed_unit = unit_label("speed", spec.user.units)
    mps = [v * MPS_PER_SPEED_UNIT[speed_unit] for v in speeds]
    raw = [spec.user.weight_kg * v * (1.0 + 0.12 * g) for v, g in zip(mps, incline, strict=True)]
    output = _scaled(raw, spec.avg_output, offsets)
    series = Series(offsets)
    series.values = {
        "output": [output[t] for t in offsets],
        "speed": [speeds[t] for t in offsets],
        "pace": _pace([speeds[t] for t in offsets]),
        "incline": [incline[t] for t in offsets],
    }
    series.speed_mps = [mps[t] for t in offsets]
    return series


def _outdoor(
    rng: random.Random, spec: WorkoutSpec, plan: list[float], offsets: list[int]
) -> Series:
    speeds = _moving_speeds(rng, spec, plan, belt=False)
    metric = spec.user.units == "metric"
    base_m = TRACK_ORIGINS.get(spec.timezone, (0.0, 0.0, 40.0))[2] + rng.uniform(-5, 30)
    altitude, alt, slope = [], base_m * (1 if metric else 1 / 0.3048), 0.0
    for _ in plan:
        slope = max(-0.15, min(0.15, slope * 0.98 + rng.gauss(0, 0.01)))
        alt += slope
        altitude.append(round(alt, 1) if metric else round(alt))
    speed_unit = unit_label("speed", spec.user.units)
    series = Series(offsets)
    series.values = {
        "speed": [speeds[t] for t in offsets],
        "pace": _pace([speeds[t] for t in offsets]),
        "altitude": [altitude[t] for t in offsets],
    }
    series.speed_mps = [speeds[t] * MPS_PER_SPEED_UNIT[speed_unit] for t in offsets]
    return series


def _row(rng: random.Random, spec: WorkoutSpec, plan: list[float], offsets: list[int]) -> Series:
    rates, last_level, rate = [], -1.0, 20.0
    for t, lvl in enumerate(plan):
        if lvl != last_level:
            rate = 17 + 14 * lvl + rng.uniform(-1.5, 1.5)
            last_level = lvl
        rates.append(0 if t < spec.first_offset + 1 else max(0, round(rate + rng.gauss(0, 0.6))))
    raw = [(r / 24) ** 2 * (1 + rng.gauss(0, 0.04)) for r in rates]
    output = _scaled(raw, spec.avg_output, offsets)
    split = [round(500 / (p / 2.8) ** (1 / 3) / 60, 2) if p > 0 else None for p in output]
    series = Series(offsets)
    series.values = {
        "output": [output[t] for t in offsets],
        "stroke_rate": [rates[t] for t in offsets],
        "split_pace": [split[t] for t in offsets],
    }
    series.speed_mps = [500 / (s * 60) if s else 0.0 for s in (split[t] for t in offsets)]
    return series


def _heart_rate(rng: random.Random, spec: WorkoutSpec, plan: list[float]) -> tuple[list[int], int]:
    user = spec.user
    scale = {"strength": 0.8, "yoga": 0.55, "meditation": 0.15}.get(spec.kind, 1.0)
    pickup = rng.choice((0, 0, 0, 2, 4, 7)) + spec.first_offset
    hr, values = float(user.resting_hr + 15), []
    for t, lvl in enumerate(plan):
        target = user.resting_hr + (0.93 * user.max_hr - user.resting_hr) * (lvl * scale) ** 1.1
        hr += (target - hr) / 18 + rng.gauss(0, 0.7)
        values.append(0 if t < pickup else max(45, min(user.max_hr, round(hr))))
    return values, pickup


def base_offsets(spec: WorkoutSpec, rng: random.Random) -> list[int]:
    """Seconds with a sample: ``first_offset..recorded``, minus a few dropped seconds."""
    end = spec.recorded
    dropped: set[int] = set()
    if spec.spec.is_outdoor or rng.random() < 0.2:
        for _ in range(rng.randint(1, 5)):
            start = rng.randint(spec.first_offset + 5, max(spec.first_offset + 6, end - 5))
            dropped.update(range(start, start + rng.randint(1, 4)))
    offsets = [t for t in range(spec.first_offset, end + 1) if t not in dropped]
    return offsets or [spec.first_offset]


_MODELS = {"bike": _bike, "tread": _tread, "outdoor": _outdoor, "row": _row}


def generate_series(spec: WorkoutSpec) -> Series:
    """The base series of ``spec`` (deterministic: depends only on the spec)."""
    rng = random.Random(derive(spec.seed, "series"))
    plan = _plan(rng, spec)[: spec.recorded + 1]
    offsets = base_offsets(spec, rng)
    model = spec.spec.series
    series = _MODELS[model](rng, spec, plan, offsets) if model in _MODELS else Series(offsets)
    if not series.speed_mps:
        series.speed_mps = [0.0] * len(offsets)
    if spec.heart_rate:
        hr, pickup = _heart_rate(rng, spec, plan)
        series.values["heart_rate"] = [hr[t] for t in offsets]
        series.hr_missing = sum(1 for t in offsets if t < pickup)
    return series


def integrate(offsets: Sequence[int], speeds: Sequence[float]) -> float:
    """Distance (speed unit × seconds) by holding each speed until the next offset (1 s last)."""
    total = 0.0
    for i, v in enumerate(speeds):
        dt = offsets[i + 1] - offsets[i] if i + 1 < len(offsets) else 1
        total += v * dt
    return total


def mean(values: Sequence[Value]) -> float | None:
    nums = [v for v in values if v is not None]
    return math.fsum(nums) / len(nums) if nums else None
