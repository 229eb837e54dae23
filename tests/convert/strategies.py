"""Hypothesis strategies for Peloton performance graphs and whole bundles."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.convert.bundles import START, coordinates, make_bundle, metric, segment, summary

DISCIPLINES = ["cycling", "running", "walking", "caesar", "strength", "yoga", "meditation"]
ZONES = ["America/New_York", "Etc/GMT+5", "Europe/London", "Australia/Sydney", "Asia/Kolkata"]


@st.composite
def values(draw: st.DrawFn, n: int, lo: float, hi: float, *, ints: bool = False) -> list[Any]:
    """n values with random nulls."""
    null_rate = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))
    out: list[Any] = []
    for _ in range(n):
        if draw(st.floats(0, 1)) < null_rate:
            out.append(None)
        elif ints:
            out.append(draw(st.integers(int(lo), int(hi))))
        else:
            out.append(round(draw(st.floats(lo, hi, allow_nan=False)), 2))
    return out


@st.composite
def bundles(draw: st.DrawFn, *, max_samples: int = 120) -> dict[str, Any]:
    """A random but well-formed workout bundle."""
    discipline = draw(st.sampled_from(DISCIPLINES))
    every_n = draw(st.sampled_from([1, 1, 2, 5, 10]))
    first = draw(st.sampled_from([0, 1, 2, 7]))
    n = draw(st.integers(0, max_samples))
    offsets = [float(first + i * every_n) for i in range(n)]
    metric_ish = discipline in ("cycling", "running", "walking", "caesar")
    imperial = draw(st.booleans())
    metrics: list[dict[str, Any]] = []
    if draw(st.booleans()):
        hr = draw(values(n, 40, 200, ints=True))
        lead_zeros = draw(st.integers(0, min(n, 5)))
        hr[:lead_zeros] = [0] * lead_zeros  # strap not yet reading
        metrics.append(metric("heart_rate", "bpm", hr))
    if metric_ish and draw(st.booleans()):
        metrics.append(metric("output", "watts", draw(values(n, 0, 1200, ints=True))))
    if discipline == "cycling" and draw(st.booleans()):
        metrics.append(metric("cadence", "rpm", draw(values(n, 0, 140, ints=True))))
        metrics.append(metric("resistance", "%", draw(values(n, 0, 100, ints=True))))
    if discipline == "caesar" and draw(st.booleans()):
        metrics.append(metric("stroke_rate", "spm", draw(values(n, 10, 40, ints=True))))
        metrics.append(metric("split_pace", "min/500m", draw(values(n, 1.3, 4.0))))
    speed_kind = draw(st.sampled_from(["none", "speed", "pace", "pace_alt"]))
    if discipline in ("cycling", "running", "walking") and speed_kind != "none":
        speed_unit = "mph" if imperial else "kph"
        speeds = draw(values(n, 0.0, 30.0))
        if speed_kind == "speed":
            metrics.append(metric("speed", speed_unit, speeds))
        else:
            pace_unit = "min/mi" if imperial else "min/km"
            paces = draw(values(n, 3.0, 30.0))
            alts = [metric("speed", speed_unit, speeds)] if speed_kind == "pace_alt" else []
            metrics.append(metric("pace", pace_unit, paces, alternatives=alts))
    if discipline == "running" and draw(st.booleans()):
        metrics.append(metric("incline", "%", draw(values(n, 0, 15))))
    location_data: list[dict[str, Any]] = []
    if discipline in ("running", "walking") and n and draw(st.booleans()):
        metrics.append(metric("altitude", "ft" if imperial else "m", draw(values(n, -50, 3000))))
        pieces = draw(st.integers(1, 3))
        bounds = sorted(draw(st.lists(st.integers(0, n), min_size=pieces - 1, max_size=pieces - 1)))
        edges = [0, *bounds, n]
        for k in range(pieces):
            offs = offsets[edges[k] : edges[k + 1]]
            if draw(st.booleans()):  # a few extra GPS points between samples
                offs = sorted({*offs, *(o + 0.5 for o in offs[::7])})
            if draw(st.booleans()) and offs:  # and a few samples without a GPS fix
                offs = offs[: max(1, len(offs) - draw(st.integers(0, 3)))]
            pts = [(o, 40.0 + o * 1e-4, -73.9 + o * 2e-4) for o in offs]
            location_data.append(
                {"is_gap": draw(st.booleans()) and k > 0, "coordinates": coordinates(pts)}
            )
    dur = (offsets[-1] if offsets else 0.0) + draw(st.sampled_from([0.0, every_n, 30.0]))
    summaries = [summary("calories", "kcal", draw(st.integers(0, 1500)))]
    if any(m["slug"] in ("speed", "pace", "split_pace") for m in metrics) and draw(st.booleans()):
        unit = "m" if discipline == "caesar" else ("mi" if imperial else "km")
        summaries.append(summary("distance", unit, round(draw(st.floats(0.01, 50)), 2)))
    segments: list[dict[str, Any]] = []
    if draw(st.booleans()) and dur > 0:
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, int(dur))), max_size=4))))
        starts = [0, *cuts]
        for i, s0 in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else int(dur)
            if end > s0:
                segments.append(segment(f"Seg{i}", s0, end - s0))
    return make_bundle(
        offsets=offsets,
        metrics=metrics,
        summaries=summaries,
        segments=segments,
        location_data=location_data,
        discipline=discipline,
        start_time=START + draw(st.integers(-(10**8), 10**8)),
        duration=dur,
        timezone=draw(st.sampled_from([*ZONES, None])),
        total_work=draw(st.sampled_from([None, 0.0, 250000.0])),
    )
