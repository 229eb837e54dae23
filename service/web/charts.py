"""Server-side SVG for the dashboard: one metric over time, and a GPS route's outline.

No JavaScript and no charting library: a chart is a handful of SVG elements (grid lines, tick
labels, lap boundaries, one ``<path>`` per metric) styled by the dashboard's stylesheet through
classes (``svg.chart``, ``path.series``, ``line.lap``, ``path.route``). Series are decimated to
at most a few hundred points so a one-hour workout stays a light page.

Every builder returns SVG markup as a string (text escaped here) or ``None`` when there is
nothing to draw; :func:`charts_for_bundle` does the whole workout page's set from a Peloton
bundle and is meant to run off the event loop (parsing is CPU work).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from service.convert.model import Activity, Discipline, Sample
from service.convert.peloton import parse_bundle
from service.web.zones import Zone, heart_rate_zones

MAX_POINTS = 600
#: (seconds from the start, value): one point of a metric's series.
Point = tuple[float, float]

# Chart geometry, in viewBox units: the stylesheet scales the box to the chart card's width,
# which is the same whatever the number of charts (so is the text's size).
WIDTH, HEIGHT = 400.0, 180.0
LEFT, RIGHT, TOP, BOTTOM = 40.0, 8.0, 20.0, 22.0
# Half of the widest time label ("1:00:00" at up to 14 px, ~55 units): a label closer than
# this to the plot's right end is aligned on its end, so it is never clipped.
HALF_TIME_LABEL = 30.0
ROUTE_SIZE, ROUTE_PAD = 320.0, 12.0


@dataclass(frozen=True)
class Metric:
    """A sample field shown as a chart, with its display unit."""

    key: str  # the Sample attribute
    label: str
    unit: str
    scale: float = 1.0  # model unit -> display unit (m/s -> km/h: 3.6)
    decimals: int = 0
    from_zero: bool = True  # the y axis starts at 0 (not for heart rate: 0 is never recorded)


METRICS: tuple[Metric, ...] = (
    Metric("heart_rate", "Heart rate", "bpm", from_zero=False),
    Metric("power", "Power", "W"),
    Metric("cadence", "Cadence", "rpm"),
    Metric("speed", "Speed", "km/h", scale=3.6, decimals=1),
    Metric("resistance", "Resistance", "%"),
    Metric("incline", "Incline", "%", decimals=1),
)
# Cadence counts steps on foot and strokes on a rower, not pedal revolutions.
CADENCE_UNITS = {
    Discipline.RUNNING: "spm",
    Discipline.WALKING: "spm",
    Discipline.TREAD_BOOTCAMP: "spm",
    Discipline.ROWING: "spm",
    Discipline.ROW_BOOTCAMP: "spm",
}


@dataclass(frozen=True)
class Chart:
    metric: Metric
    svg: str
    average: float  # over the recorded points, in the display unit
    maximum: float


@dataclass(frozen=True)
class LapRow:
    name: str
    start_offset_s: float
    duration_s: float
    distance_m: float | None
    avg_heart_rate: int | None
    avg_power: float | None


@dataclass(frozen=True)
class WorkoutCharts:
    """What the workout page draws: a chart per recorded metric, the route, the laps."""

    charts: list[Chart]
    route: str | None
    laps: list[LapRow]
    duration_s: float
    zones: Sequence[Zone] = ()  # shading the heart-rate chart


# --- series ----------------------------------------------------------------------------------


def segments(samples: Sequence[Sample], metric: Metric) -> list[list[Point]]:
    """The metric's points in display units, split where it was not recorded (gaps)."""
    found: list[list[Point]] = []
    current: list[Point] = []
    for sample in samples:
        value = getattr(sample, metric.key)
        if value is None or not math.isfinite(value):
            if current:
                found.append(current)
                current = []
            continue
        current.append((sample.offset_s, float(value) * metric.scale))
    if current:
        found.append(current)
    return found


def decimate(points: Sequence[Point], max_points: int = MAX_POINTS) -> list[Point]:
    """At most ``max_points`` points (``max_points`` ≥ 2) keeping the shape: each bucket of
    consecutive points gives its lowest and highest, in time order, so peaks survive."""
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if len(points) <= max_points:
        return list(points)
    buckets = max_points // 2
    size = len(points) / buckets
    kept: list[Point] = []
    for bucket in range(buckets):
        chunk = points[int(bucket * size) : int((bucket + 1) * size)]
        if not chunk:
            continue
        low = min(range(len(chunk)), key=lambda i: chunk[i][1])
        high = max(range(len(chunk)), key=lambda i: chunk[i][1])
        for index in sorted({low, high}):
            kept.append(chunk[index])
    return kept


def decimate_segments(parts: Sequence[Sequence[Point]], max_points: int) -> list[list[Point]]:
    """Decimate each segment with a share of ``max_points`` proportional to its length."""
    total = sum(len(p) for p in parts)
    if total <= max_points:
        return [list(p) for p in parts]
    return [decimate(p, max(2, max_points * len(p) // total)) for p in parts]


# --- axes ------------------------------------------------------------------------------------


def nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about ``count`` intervals."""
    raw = span / max(count, 1)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def value_axis(low: float, high: float, *, from_zero: bool, count: int = 4) -> list[float]:
    """Tick values covering [low, high], the first and last being the axis' ends."""
    if from_zero and low >= 0:
        low = 0.0
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    step = nice_step(high - low, count)
    start = math.floor(low / step) * step
    end = math.ceil(high / step) * step
    ticks = []
    value = start
    while value <= end + step / 2:
        ticks.append(round(value, 6))
        value += step
    return ticks


TIME_STEPS = (15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200)


def time_ticks(duration_s: float, count: int = 6) -> list[float]:
    """Round times (15 s ... 2 h apart) from 0 to ``duration_s``, about ``count`` of them."""
    if duration_s <= 0:
        return [0.0]
    step = next((s for s in TIME_STEPS if duration_s / s <= count), TIME_STEPS[-1])
    return [float(t) for t in range(0, int(duration_s) + 1, step)]


def clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _n(value: float) -> str:
    """A coordinate with one decimal, without a trailing ``.0``."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _label(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}" if decimals and value != int(value) else f"{value:.0f}"


# --- the metric chart ------------------------------------------------------------------------


def metric_chart(
    parts: Sequence[Sequence[Point]],
    metric: Metric,
    *,
    duration_s: float,
    laps: Sequence[tuple[float, str]] = (),
    max_points: int = MAX_POINTS,
    zones: Sequence[Zone] = (),
) -> str | None:
    """An SVG line chart of one metric over the workout's time, or None if never recorded.

    ``parts`` are the metric's recorded stretches (see :func:`segments`); ``laps`` are
    ``(start offset in seconds, name)``: every lap but one starting at 0 is drawn as a
    vertical line titled with its name. ``zones`` are shaded behind the line where they meet
    the value axis. The unit is written above the value axis.
    """
    drawn = [p for p in decimate_segments(parts, max_points) if p]
    if not drawn:
        return None
    values = [v for part in drawn for _, v in part]
    end = max(duration_s, max(t for part in drawn for t, _ in part), 1.0)
    ticks = value_axis(min(values), max(values), from_zero=metric.from_zero)
    low, high = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(seconds: float) -> float:
        return LEFT + seconds / end * plot_w

    def y(value: float) -> float:
        return TOP + (high - value) / (high - low) * plot_h

    title = f"{metric.label} ({metric.unit})"
    out = [
        f'<svg class="chart chart-{metric.key}" viewBox="0 0 {_n(WIDTH)} {_n(HEIGHT)}" '
        f'role="img" aria-label={quoteattr(title)} xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text class="unit" x="2" y="{_n(TOP - 9)}">{escape(metric.unit)}</text>',
    ]
    for number, zone in enumerate(zones, start=1):
        top, bottom = min(zone.high, high), max(zone.low, low)
        if top <= bottom:
            continue
        out.append(
            f'<rect class="zone zone-{min(number, 5)}" x="{_n(LEFT)}" y="{_n(y(top))}" '
            f'width="{_n(plot_w)}" height="{_n(y(bottom) - y(top))}">'
            f"<title>{escape(zone.name)}: {escape(zone.label)}</title></rect>"
        )
    for tick in ticks:
        ty = _n(y(tick))
        out.append(
            f'<line class="grid" x1="{_n(LEFT)}" x2="{_n(WIDTH - RIGHT)}" y1="{ty}" y2="{ty}"/>'
        )
        text = _label(tick, metric.decimals)
        out.append(f'<text class="tick y" x="{_n(LEFT - 4)}" y="{ty}">{text}</text>')
    for tick in time_ticks(end):
        tx = x(tick)
        at_end = tx > WIDTH - RIGHT - HALF_TIME_LABEL
        kind, tx = ("tick x end", WIDTH - 1) if at_end else ("tick x", tx)
        out.append(f'<text class="{kind}" x="{_n(tx)}" y="{_n(HEIGHT - 6)}">{clock(tick)}</text>')
    for start, name in laps:
        if 0 < start < end:
            lx = _n(x(start))
            out.append(
                f'<line class="lap" x1="{lx}" x2="{lx}" y1="{_n(TOP)}" y2="{_n(TOP + plot_h)}">'
                f"<title>{escape(name)} from {clock(start)}</title></line>"
            )
    path = " ".join("M" + " L".join(f"{_n(x(t))} {_n(y(v))}" for t, v in part) for part in drawn)
    out.append(f'<path class="series" d="{path}"/>')
    out.append("</svg>")
    return "".join(out)


# --- the route -------------------------------------------------------------------------------


def route_outline(
    tracks: Sequence[Sequence[tuple[float, float]]], *, max_points: int = MAX_POINTS
) -> str | None:
    """The route as an SVG outline, or None without at least two distinct positions.

    ``tracks`` are lists of ``(latitude, longitude)``. Equirectangular projection about the
    route's mean latitude (longitudes shrink by its cosine), which is exact enough for the
    few kilometres of a workout; scaled to fit ``ROUTE_SIZE`` keeping the route's proportions,
    north up. Start and finish are marked.
    """
    kept_tracks = [list(t) for t in tracks if t]
    points = [p for t in kept_tracks for p in t]
    if len(set(points)) < 2:
        return None
    mean_lat = sum(lat for lat, _ in points) / len(points)
    shrink = math.cos(math.radians(mean_lat))
    xs = [lon * shrink for _, lon in points]
    ys = [-lat for lat, _ in points]
    min_x, min_y = min(xs), min(ys)
    span_x, span_y = max(xs) - min_x, max(ys) - min_y
    inner = ROUTE_SIZE - 2 * ROUTE_PAD
    scale = inner / max(span_x, span_y)
    width = 2 * ROUTE_PAD + span_x * scale
    height = 2 * ROUTE_PAD + span_y * scale

    def project(lat: float, lon: float) -> tuple[float, float]:
        return ROUTE_PAD + (lon * shrink - min_x) * scale, ROUTE_PAD + (-lat - min_y) * scale

    total = len(points)
    paths = []
    for track in kept_tracks:
        step = max(1, math.ceil(total / max_points))
        kept = track[::step]
        if kept[-1] != track[-1]:
            kept.append(track[-1])
        coords = [project(lat, lon) for lat, lon in kept]
        paths.append("M" + " L".join(f"{_n(px)} {_n(py)}" for px, py in coords))
    sx, sy = project(*kept_tracks[0][0])
    ex, ey = project(*kept_tracks[-1][-1])
    return (
        f'<svg class="route" viewBox="0 0 {_n(width)} {_n(height)}" role="img" '
        f'aria-label="Route" xmlns="http://www.w3.org/2000/svg"><title>Route</title>'
        f'<path class="route" d="{" ".join(paths)}"/>'
        f'<circle class="start" cx="{_n(sx)}" cy="{_n(sy)}" r="5"><title>Start</title></circle>'
        f'<circle class="finish" cx="{_n(ex)}" cy="{_n(ey)}" r="5"><title>Finish</title></circle>'
        "</svg>"
    )


def gps_tracks(samples: Sequence[Sample]) -> list[list[tuple[float, float]]]:
    """Positions grouped by GPS track segment (a new segment after a GPS gap)."""
    tracks: dict[int, list[tuple[float, float]]] = {}
    for sample in samples:
        if sample.latitude is not None and sample.longitude is not None:
            tracks.setdefault(sample.track_segment or 0, []).append(
                (sample.latitude, sample.longitude)
            )
    return [tracks[k] for k in sorted(tracks)]


# --- a workout's page ------------------------------------------------------------------------


def workout_charts(
    activity: Activity, *, max_points: int = MAX_POINTS, zones: Sequence[Zone] = ()
) -> WorkoutCharts:
    """Every chart the workout page shows, from the canonical activity; ``zones`` (the
    rider's heart-rate zones) shade the heart-rate chart."""
    duration = activity.duration.total_seconds()
    laps = [(lap.start_offset_s, lap.name or f"Lap {i + 1}") for i, lap in enumerate(activity.laps)]
    charts = []
    for metric in METRICS:
        if metric.key == "cadence":
            metric = replace(metric, unit=CADENCE_UNITS.get(activity.discipline, metric.unit))
        parts = segments(activity.samples, metric)
        svg = metric_chart(
            parts,
            metric,
            duration_s=duration,
            laps=laps,
            max_points=max_points,
            zones=zones if metric.key == "heart_rate" else (),
        )
        if svg is None:
            continue
        values = [v for part in parts for _, v in part]
        charts.append(Chart(metric, svg, sum(values) / len(values), max(values)))
    rows = [
        LapRow(
            name=name,
            start_offset_s=lap.start_offset_s,
            duration_s=lap.stats.duration_s,
            distance_m=lap.stats.distance_m,
            avg_heart_rate=lap.stats.avg_heart_rate,
            avg_power=lap.stats.avg_power,
        )
        for lap, (_, name) in zip(activity.laps, laps, strict=True)
    ]
    route = route_outline(gps_tracks(activity.samples), max_points=max_points)
    shaded = tuple(zones) if any(c.metric.key == "heart_rate" for c in charts) else ()
    return WorkoutCharts(charts, route, rows, duration, shaded)


def charts_for(activity: Activity, bundle: dict[str, Any]) -> WorkoutCharts:
    """The workout page's charts: ``activity`` (the bundle, parsed) drawn with the rider's
    heart-rate zones from the bundle's performance graph."""
    return workout_charts(activity, zones=heart_rate_zones(bundle))


def charts_for_bundle(bundle: dict[str, Any]) -> WorkoutCharts:
    """Parse a stored Peloton bundle and build its charts (raises ``ConversionError``)."""
    return charts_for(parse_bundle(bundle), bundle)
