"""Per-sample series from a performance graph: metric lookup, units, GPS join, distance.

Everything here works on plain lists indexed like the time grid, which is the union of the
graph's sample offsets and the GPS coordinate offsets (their counts differ in real data, so GPS
points are joined on ``seconds_offset_from_start``, never by position).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from service.convert.bundle import GraphIn, LocationSegmentIn, MetricIn
from service.convert.units import (
    distance_factor,
    pace_to_mps,
    speed_factor,
)
from service.errors import ConversionError

HR_UNITS = frozenset({"bpm"})
POWER_UNITS = frozenset({"watts", "w", "watt"})
CADENCE_UNITS = frozenset({"rpm", "spm", "steps/min"})
PERCENT_UNITS = frozenset({"%", ""})


def find_metric(graph: GraphIn, *slugs: str) -> MetricIn | None:
    """The first metric with one of ``slugs``, searching top-level metrics then alternatives."""
    for slug in slugs:
        for metric in graph.metrics:
            if metric.slug == slug:
                return metric
        for metric in graph.metrics:
            for alt in metric.alternatives:
                if alt.slug == slug:
                    return alt
    return None


def speed_metric(graph: GraphIn) -> MetricIn | None:
    """Speed, preferring a direct speed series over a pace that must be inverted."""
    return find_metric(graph, "speed", "pace", "split_pace")


@dataclass
class Series:
    """Aligned per-sample values in canonical units (None: not recorded at that point)."""

    offsets: list[float]
    heart_rate: list[int | None]
    power: list[float | None]
    cadence: list[float | None]
    speed: list[float | None]
    altitude: list[float | None]
    resistance: list[float | None]
    incline: list[float | None]
    latitude: list[float | None]
    longitude: list[float | None]
    track_segment: list[int | None]
    is_sample: list[bool]
    distance: list[float | None] = field(default_factory=list)


def _values(metric: MetricIn | None, n: int) -> list[float | None]:
    """A metric's values (finite: the bundle model refuses NaN and infinities)."""
    if metric is None:
        return [None] * n
    if len(metric.values) != n:
        raise ConversionError(
            f"performance_graph.metrics[{metric.slug}]: {len(metric.values)} values "
            f"for {n} sample offsets"
        )
    return list(metric.values)


def _checked(metric: MetricIn | None, units: frozenset[str], what: str) -> MetricIn | None:
    if metric is not None and (metric.display_unit or "").strip().lower() not in units:
        expected = ", ".join(sorted(u or "(none)" for u in units))
        raise ConversionError(
            f"{what}: unexpected unit {metric.display_unit!r} (expected {expected})"
        )
    return metric


def check_offsets(offsets: list[float]) -> None:
    """Offsets must increase (the bundle model already made them finite and non-negative)."""
    for i in range(1, len(offsets)):
        if offsets[i] <= offsets[i - 1]:
            raise ConversionError(
                f"performance_graph.seconds_since_pedaling_start[{i}]: offsets must increase "
                f"({offsets[i]!r} follows {offsets[i - 1]!r})"
            )


def speeds_mps(metric: MetricIn | None, n: int) -> list[float | None]:
    """The speed series in m/s from a speed or pace metric."""
    raw = _values(metric, n)
    if metric is None:
        return raw
    what = f"performance_graph.metrics[{metric.slug}]"
    factor = speed_factor(metric.display_unit, what=what)
    if factor is None:
        unit = (metric.display_unit or "").strip().lower()
        return [None if v is None else pace_to_mps(v, unit) for v in raw]
    return [None if v is None else v * factor for v in raw]


def gps_points(
    location_data: list[LocationSegmentIn] | None,
) -> tuple[dict[float, tuple[float, float, int]], list[tuple[float, float]]]:
    """Positions by offset (with their track segment), and (offset, metres) GPS distances.

    Each non-gap location segment is one track segment; ``is_gap`` segments are Peloton's
    filler across a GPS outage, not a recorded track, so they give no positions and split the
    track. Their cumulative distances are still used for the distance curve.
    """
    positions: dict[float, tuple[float, float, int]] = {}
    distances: list[tuple[float, float]] = []
    factors: dict[str, float] = {}
    segment = 0
    for seg_index, loc in enumerate(location_data or []):
        if not loc.coordinates:
            continue
        used = False
        gap = loc.is_gap
        for c in loc.coordinates:
            off = c.seconds_offset_from_start  # finite and >= 0: checked by the bundle model
            metres = c.distance
            if metres is not None:
                unit = c.distance_display_unit or "mi"
                factor = factors.get(unit)
                if factor is None:
                    factor = factors[unit] = distance_factor(
                        unit,
                        what=f"performance_graph.location_data[{seg_index}].distance_display_unit",
                    )
                distances.append((off, metres * factor))
            if not gap and off not in positions:
                positions[off] = (c.latitude, c.longitude, segment)
                used = True
        if used:
            segment += 1
    distances.sort()
    return positions, distances


def build_series(graph: GraphIn, *, rowing: bool) -> Series:
    """Align every metric on the union of sample and GPS offsets, in canonical units."""
    offsets = list(graph.seconds_since_pedaling_start)
    check_offsets(offsets)
    n = len(offsets)
    hr = _values(_checked(find_metric(graph, "heart_rate"), HR_UNITS, "heart_rate"), n)
    power = _values(_checked(find_metric(graph, "output"), POWER_UNITS, "output"), n)
    cad_slugs = ("stroke_rate", "cadence") if rowing else ("cadence", "stroke_rate")
    cad_metric = _checked(find_metric(graph, *cad_slugs), CADENCE_UNITS, "cadence")
    cadence = _values(cad_metric, n)
    speed = speeds_mps(speed_metric(graph), n)
    alt_metric = find_metric(graph, "altitude")
    altitude = _values(alt_metric, n)
    if alt_metric is not None:
        f = distance_factor(alt_metric.display_unit, what="performance_graph.metrics[altitude]")
        altitude = [None if v is None else v * f for v in altitude]
    resistance = _values(_checked(find_metric(graph, "resistance"), PERCENT_UNITS, "resistance"), n)
    incline = _values(_checked(find_metric(graph, "incline"), PERCENT_UNITS, "incline"), n)
    positions, gps_distance = gps_points(graph.location_data)

    # The time grid: sample offsets plus GPS offsets that fall between them.
    grid = sorted(set(offsets).union(positions))
    index = {off: i for i, off in enumerate(offsets)}

    def spread(values: list[float | None]) -> list[float | None]:
        if len(grid) == n:
            return values
        return [values[index[o]] if o in index else None for o in grid]

    heart_rate: list[int | None] = [
        round(v) if v is not None and v > 0 else None for v in spread(hr)
    ]
    lat: list[float | None] = []
    lon: list[float | None] = []
    seg: list[int | None] = []
    for off in grid:
        point = positions.get(off)
        lat.append(point[0] if point else None)
        lon.append(point[1] if point else None)
        seg.append(point[2] if point else None)
    series = Series(
        offsets=grid,
        heart_rate=heart_rate,
        power=spread(power),
        cadence=spread(cadence),
        speed=spread(speed),
        altitude=spread(altitude),
        resistance=spread(resistance),
        incline=spread(incline),
        latitude=lat,
        longitude=lon,
        track_segment=seg,
        is_sample=[o in index for o in grid],
    )
    series.distance = distance_curve(series, gps_distance)
    return series


def _dedupe(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for t, d in points:
        if out and out[-1][0] == t:
            out[-1] = (t, max(out[-1][1], d))
        else:
            out.append((t, d))
    return out


def _gps_usable(gps_distance: list[tuple[float, float]]) -> bool:
    if len(gps_distance) < 2 or gps_distance[-1][1] <= 0:
        return False
    return all(b[1] >= a[1] for a, b in zip(gps_distance, gps_distance[1:], strict=False))


def distance_curve(series: Series, gps_distance: list[tuple[float, float]]) -> list[float | None]:
    """Cumulative metres at each grid point, before any scaling to the summary.

    GPS cumulative distance when Peloton gives a usable one (interpolated in time between
    coordinates), else speed integrated over the real time offsets: the speed at a sample
    holds over the interval that ends at it (Peloton reports each sample at its end).
    No speed and no GPS distance: no distance curve.
    """
    offsets = series.offsets
    if _gps_usable(gps_distance):
        return _interpolate(_dedupe(gps_distance), offsets)
    if all(v is None for v in series.speed):
        return [None] * len(offsets)
    # Integrate over the graph's own samples; GPS-only grid points are interpolated after.
    total = 0.0
    prev = 0.0
    known: list[tuple[float, float]] = []
    for off, v, sampled in zip(offsets, series.speed, series.is_sample, strict=True):
        if not sampled:
            continue
        if v is not None:
            total += v * (off - prev)
        prev = off
        known.append((off, total))
    if len(known) == len(offsets):
        return [d for _, d in known]
    return _interpolate(known, offsets)


def _interpolate(known: list[tuple[float, float]], offsets: list[float]) -> list[float | None]:
    times = [t for t, _ in known]
    out: list[float | None] = []
    for off in offsets:
        k = bisect.bisect_left(times, off)
        if k < len(times) and times[k] == off:
            out.append(known[k][1])
        elif k == 0:  # before the first point: from (0 s, 0 m)
            t1, d1 = known[0]
            out.append(d1 * off / t1 if t1 > 0 else d1)
        elif k == len(times):
            out.append(known[-1][1])
        else:
            (t0, d0), (t1, d1) = known[k - 1], known[k]
            out.append(d0 + (d1 - d0) * (off - t0) / (t1 - t0))
    return out


def scale_to(curve: list[float | None], total_m: float | None) -> list[float | None]:
    """Scale a distance curve so it ends at Peloton's summary distance.

    The summary is computed by Peloton at full resolution, so it is the authority for the
    total; the curve keeps the shape recorded by the samples (with ``every_n`` > 1 the
    integral alone can be several percent off).
    """
    last = next((d for d in reversed(curve) if d is not None), None)
    if total_m is None or last is None or last <= 0 or total_m <= 0:
        return curve
    k = total_m / last
    return [None if d is None else d * k for d in curve]
