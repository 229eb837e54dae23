"""Class intervals (instructor cues, target metrics) and the laps that follow them.

Where the intervals come from, first found wins:

1. ``ride_details.instructor_cues[]``: ``offsets{start,end}`` with ``cadence_range`` and
   ``resistance_range`` (``{lower, upper}``);
2. ``ride_details.target_metrics_performance_data.target_metrics[]``: ``offsets`` with
   ``metrics[{name, lower, upper}]``;
3. ``performance_graph.target_metrics_performance_data.target_metrics[]`` (same shape);
4. ``performance_graph.target_performance_metrics.target_graph_metrics[]`` (until 2021):
   per-second ``graph_data{lower[], upper[]}`` of ``type`` cadence and resistance. An interval
   is a run of seconds with the same cadence range, as peloton-to-garmin cuts its "class
   targets" laps; it carries the resistance range too when that holds over the whole run.

Offsets in the ride details count from the start of the class video, which runs
``ride.pedaling_start_offset`` seconds (60 for most classes) before the workout's own time
starts; open clients that draw Peloton's target line shift them back by that lead. The
performance graph's targets are already in workout time (they are compared with
``seconds_since_pedaling_start`` directly). An interval's ``end`` is its last second, so a cue
ending at 119 and the next starting at 120 are contiguous.

Laps: the coarse class segments are cut again at every interval's start (and at its end when
a gap follows), so each lap lies inside one segment and under at most one interval, whose
targets it carries. Neighbouring intervals with the same targets make one lap. Without
intervals the segment laps stay as they were.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

from service.convert.bundle import (
    BundleIn,
    GraphDataIn,
    LegacyTargetsIn,
    OffsetsIn,
    RangeIn,
    TargetIntervalIn,
)
from service.convert.model import Target
from service.convert.stats import LapBound

#: Peloton target metric name -> the model's (only metrics whose unit is certain).
TARGET_METRICS = {
    "cadence": "cadence",
    "resistance": "resistance",
    "incline": "incline",
    "power_zone": "power_zone",
}
#: Shortest lap a cue makes: a cue edge closer than this to a segment edge, another cue edge
#: or the end is rounding between Peloton's two time lines, not an interval of its own.
MIN_LAP_S = 5.0


@dataclass(frozen=True, slots=True)
class Interval:
    """A span of the class (workout seconds) with the targets the instructor gave for it."""

    start: float
    end: float
    targets: tuple[Target, ...]


def _target(metric: str, found: RangeIn | None) -> Target | None:
    if found is None or (found.lower is None and found.upper is None):
        return None
    return Target(metric=metric, lower=found.lower, upper=found.upper)


def _span(offsets: OffsetsIn, lead: float) -> tuple[float, float] | None:
    start, end = max(offsets.start - lead, 0.0), offsets.end - lead + 1.0  # end: last second
    return (start, end) if end > start else None


def _from_targets(items: list[TargetIntervalIn] | None, lead: float) -> list[Interval]:
    out = []
    for item in items or []:
        span = _span(item.offsets, lead)
        targets = tuple(
            Target(metric=TARGET_METRICS[m.name], lower=m.lower, upper=m.upper)
            for m in item.metrics or []
            if m.name in TARGET_METRICS and (m.lower is not None or m.upper is not None)
        )
        if span and targets:
            out.append(Interval(span[0], span[1], targets))
    return out


def _ranges(data: GraphDataIn) -> list[tuple[float | None, float | None]]:
    return list(itertools.zip_longest(data.lower, data.upper))


def _from_graph_data(legacy: LegacyTargetsIn) -> list[Interval]:
    by_type = {g.type: g.graph_data for g in legacy.target_graph_metrics or []}
    if "cadence" not in by_type:
        return []
    resistance = _ranges(by_type["resistance"]) if "resistance" in by_type else []
    out, second = [], 0
    for (lower, upper), run in itertools.groupby(_ranges(by_type["cadence"])):
        length = len(list(run))
        targets = []
        if lower or upper:  # 0 or null on both ends: no target
            targets.append(Target(metric="cadence", lower=lower, upper=upper))
        held = set(resistance[second : second + length])
        if len(held) == 1 and any(pair := held.pop()):
            targets.append(Target(metric="resistance", lower=pair[0], upper=pair[1]))
        if targets:
            out.append(Interval(second, second + length, tuple(targets)))
        second += length
    return out


def class_intervals(bundle: BundleIn) -> list[Interval]:
    """The class's intervals in workout time, ordered, neighbours with equal targets merged."""
    details, ride = bundle.ride_details, bundle.workout.ride
    lead = next(
        (
            v
            for v in (
                details.ride.pedaling_start_offset if details and details.ride else None,
                ride.pedaling_start_offset if ride else None,
            )
            if v is not None and v >= 0
        ),
        0.0,
    )
    found: list[Interval] = []
    if details and details.instructor_cues:
        for cue in details.instructor_cues:
            span = _span(cue.offsets, lead)
            pair = (
                _target("cadence", cue.cadence_range),
                _target("resistance", cue.resistance_range),
            )
            targets = tuple(t for t in pair if t is not None)
            if span and targets:
                found.append(Interval(span[0], span[1], targets))
    if not found and details and details.target_metrics_performance_data:
        found = _from_targets(details.target_metrics_performance_data.target_metrics, lead)
    graph_targets = bundle.performance_graph.target_metrics_performance_data
    if not found and graph_targets:
        found = _from_targets(graph_targets.target_metrics, 0.0)
    legacy = bundle.performance_graph.target_performance_metrics
    if not found and legacy:
        found = _from_graph_data(legacy)
    merged: list[Interval] = []
    for interval in sorted(found, key=lambda i: (i.start, i.end)):
        last = merged[-1] if merged else None
        if last and last.targets == interval.targets and interval.start - last.end < MIN_LAP_S:
            merged[-1] = Interval(last.start, max(last.end, interval.end), last.targets)
        elif last is None or interval.start >= last.end - 1.0:
            merged.append(interval)
        # an interval overlapping the previous one is a duplicate cue: the first one stands
    return merged


def follow_intervals(
    bounds: list[LapBound], intervals: list[Interval], end_offset: float
) -> list[LapBound]:
    """Segment laps cut at the intervals' edges, each lap with the targets of the interval
    it lies in (the one holding its middle)."""
    if not intervals:
        return bounds
    starts = [b.start for b in bounds]
    edges = set()
    for i, interval in enumerate(intervals):
        edges.add(interval.start)
        following = intervals[i + 1].start if i + 1 < len(intervals) else end_offset
        if following - interval.end >= MIN_LAP_S:
            edges.add(interval.end)  # a gap without targets follows: it is a lap of its own
    kept = list(starts)  # segment edges always stand; a cue edge near one is rounding
    for edge in sorted(edges):
        if 0 < edge <= end_offset - MIN_LAP_S and all(abs(edge - k) >= MIN_LAP_S for k in kept):
            kept.append(edge)
    kept.sort()
    interval_starts = [i.start for i in intervals]
    out = []
    for cut, following in zip(kept, [*kept[1:], end_offset], strict=True):
        middle = (cut + following) / 2
        segment = bounds[max(bisect.bisect_right(starts, cut) - 1, 0)]
        k = bisect.bisect_right(interval_starts, middle) - 1
        inside = k >= 0 and middle < intervals[k].end
        out.append(LapBound(segment.name, cut, intervals[k].targets if inside else ()))
    return out
