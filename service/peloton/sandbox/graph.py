"""``GET /api/workout/{id}/performance_graph?every_n=N`` documents, built from a base series.

``every_n`` keeps the base samples whose offset is ``first_offset + k·N``; summaries, averages,
maxima and zones always describe the whole workout (they do not change with ``every_n``), as
Peloton's do. Pace-like metrics report the fastest pace as ``max_value`` and the pace of the
mean speed as ``average_value``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from service.peloton.sandbox.catalog import IMAGE_BASE, METRIC_LABELS, METRICS_BY_MODEL, unit_label
from service.peloton.sandbox.gps import location_data
from service.peloton.sandbox.series import Series, Value, integrate, mean
from service.peloton.sandbox.specs import RideSpec, WorkoutSpec, derive


def total_work_j(spec: WorkoutSpec) -> float:
    """Joules: the target mean output over the recorded seconds (the series is scaled to it)."""
    if not spec.avg_output:
        return 0.0
    return round(spec.avg_output * spec.recorded + derive(spec.seed, "work") % 100 / 100, 2)


def _metric(
    slug: str, units: str, values: list[Value], max_value: Value, avg: Value
) -> dict[str, Any]:
    display, imperial, metric = METRIC_LABELS[slug]
    return {
        "display_name": display,
        "display_unit": imperial if units == "imperial" else metric,
        "max_value": max_value,
        "average_value": avg,
        "values": values,
        "slug": slug,
    }


def _summary(slug: str, display: str, unit: str | None, value: Value) -> dict[str, Any]:
    return {"display_name": display, "display_unit": unit, "value": value, "slug": slug}


def hr_zones(max_hr: int, hr: list[Value]) -> list[dict[str, Any]]:
    """Five zones at 65/75/85/95 % of max HR; durations count base samples in each zone."""
    b = [round(max_hr * p) for p in (0.65, 0.75, 0.85, 0.95)]
    limits = [(0, b[0] - 1), (b[0], b[1] - 1), (b[1], b[2] - 1), (b[2], b[3] - 1), (b[3], max_hr)]
    ranges = [f"<{b[0]} bpm", *(f"{lo}-{hi} bpm" for lo, hi in limits[1:4]), f">={b[3]} bpm"]
    zones = []
    for i, ((lo, hi), text) in enumerate(zip(limits, ranges, strict=True)):
        upper = math.inf if i == 4 else hi
        count = sum(1 for v in hr if v is not None and lo <= v <= upper)
        zones.append(
            {
                "display_name": f"Zone {i + 1}",
                "slug": f"zone{i + 1}",
                "range": text,
                "duration": count,
                "max_value": hi,
                "min_value": lo,
            }
        )
    return zones


def _round_mean(values: Sequence[Value], digits: int | None = None) -> Value:
    m = mean(values)
    if m is None:
        return None
    return round(m) if digits is None else round(m, digits)


def _pace_of(speed: float | None, per: float = 60.0) -> float | None:
    return round(per / speed, 2) if speed else None


class _Builder:
    """Computes every figure of one graph from the base series (all at 1 s resolution)."""

    def __init__(self, spec: WorkoutSpec, series: Series) -> None:
        self.spec = spec
        self.series = series
        self.units = spec.user.units
        self.values = series.values

    def metric(self, slug: str, keep: list[int]) -> dict[str, Any] | None:
        full = self.values.get(slug)
        if full is None:
            return None
        sampled = [full[i] for i in keep]
        nums = [v for v in full if v is not None]
        if slug == "heart_rate":
            beats = [v for v in full if v]
            out = _metric(slug, self.units, sampled, max(nums, default=0), _round_mean(beats))
            out["zones"] = hr_zones(self.spec.user.max_hr, full)
            out["missing_data_duration"] = self.series.hr_missing
            return out
        if slug in ("pace", "split_pace"):
            return self._pace_metric(slug, sampled, keep)
        if slug == "altitude":  # Peloton sends no max/average for altitude
            return _metric(slug, self.units, sampled, None, None)
        digits = 1 if slug in ("speed", "incline") else None
        return _metric(slug, self.units, sampled, max(nums, default=0), _round_mean(full, digits))

    def _pace_metric(self, slug: str, sampled: list[Value], keep: list[int]) -> dict[str, Any]:
        full = self.values[slug]
        fastest = min((v for v in full if v is not None), default=None)
        if slug == "split_pace":
            avg = _pace_of(mean(list(self.series.speed_mps)), 500 / 60)
            return _metric(slug, self.units, sampled, fastest, avg)
        out = _metric(slug, self.units, sampled, fastest, self.avg_pace())
        speed = self.metric("speed", keep)
        out["alternatives"] = [speed] if speed else []
        return out

    def avg_speed(self) -> float | None:
        return mean(self.values["speed"]) if "speed" in self.values else None

    def avg_pace(self) -> float | None:
        return _pace_of(self.avg_speed())

    def distance(self) -> tuple[float, str] | None:
        """Summary distance in the user's unit (metres for the rower), from the 1 s series."""
        offsets = self.series.offsets
        if self.spec.spec.series == "row":
            return round(integrate(offsets, self.series.speed_mps)), "m"
        if "speed" not in self.values:
            return None
        speeds = [float(v or 0) for v in self.values["speed"]]
        unit = "mi" if self.units == "imperial" else "km"
        return round(integrate(offsets, speeds) / 3600, 2), unit

    def elevation(self) -> int:
        if "altitude" in self.values:
            alt = [float(v or 0) for v in self.values["altitude"]]
            return round(sum(max(0.0, b - a) for a, b in zip(alt, alt[1:], strict=False)))
        incline = [float(v or 0) for v in self.values.get("incline", [])]
        climb = integrate(
            self.series.offsets,
            [v * g / 100 for v, g in zip(self.series.speed_mps, incline, strict=True)],
        )
        return round(climb / (0.3048 if self.units == "imperial" else 1.0))

    def calories(self, distance: tuple[float, str] | None) -> int:
        spec, kind = self.spec, self.spec.spec
        hours = spec.recorded / 3600
        kj = total_work_j(spec) / 1000
        if kind.series in ("bike", "tread"):  # ~25 % efficiency: about 1 kcal per kJ
            return round(kj * (0.95 + derive(spec.seed, "kcal") % 35 / 100))
        if kind.series == "row":
            return round((4 * spec.avg_output * 0.8604 + 300) * hours)
        if kind.series == "outdoor" and distance:
            km = distance[0] * (1.609344 if distance[1] == "mi" else 1.0)
            # kcal per kg and km: about 1 running, 0.65 walking, 0.3 riding.
            per_km = {"walking": 0.65, "cycling": 0.3}.get(kind.fitness_discipline, 1.0)
            return round(spec.user.weight_kg * km * per_km)
        return round(kind.mets * spec.user.weight_kg * hours)

    def summaries(self) -> list[dict[str, Any]]:
        model = self.spec.spec.series
        out = []
        if "output" in self.values:
            out.append(
                _summary(
                    "total_output", "Total Output", "kj", round(total_work_j(self.spec) / 1000)
                )
            )
        distance = self.distance()
        if distance:
            out.append(_summary("distance", "Distance", distance[1], distance[0]))
        if model in ("tread", "outdoor"):
            out.append(
                _summary(
                    "elevation", "Elevation", unit_label("altitude", self.units), self.elevation()
                )
            )
        out.append(_summary("calories", "Calories", "kcal", self.calories(distance)))
        if model == "row":
            strokes = integrate(
                self.series.offsets, [float(v or 0) / 60 for v in self.values["stroke_rate"]]
            )
            out.append(_summary("stroke_count", "Stroke Count", None, round(strokes)))
        return out

    def average_summaries(self, metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        order = {
            "bike": ("output", "cadence", "resistance", "speed"),
            "tread": ("output", "pace", "incline", "speed"),
            "outdoor": ("pace", "speed"),
            "row": ("output", "stroke_rate", "split_pace"),
            "floor": (),
        }[self.spec.spec.series]
        out = []
        for slug in order:
            metric = metrics.get(slug)
            if metric is None and slug == "speed" and "pace" in metrics:
                metric = metrics["pace"]["alternatives"][0]
            if metric is not None:
                label = f"Avg {METRIC_LABELS[slug][0]}"
                unit, value = metric["display_unit"], metric["average_value"]
                out.append(_summary(f"avg_{slug}", label, unit, value))
        return out

    def splits(self) -> dict[str, Any] | list[Any]:
        if "speed" not in self.values:
            return []
        unit = "mi" if self.units == "imperial" else "km"
        offsets, speeds = self.series.offsets, [float(v or 0) for v in self.values["speed"]]
        splits: list[dict[str, Any]] = []
        travelled, last_t, marker = 0.0, offsets[0], 1
        for i, v in enumerate(speeds):
            dt = offsets[i + 1] - offsets[i] if i + 1 < len(offsets) else 1
            travelled += v * dt / 3600
            if travelled >= marker:
                t = offsets[i] + dt
                splits.append(
                    {
                        "distance_marker": float(marker),
                        "order": marker,
                        "seconds": float(t - last_t),
                    }
                )
                last_t, marker = t, marker + 1
        rest = round(travelled - (marker - 1), 2)
        if rest > 0:
            splits.append(
                {
                    "distance_marker": rest,
                    "order": marker,
                    "seconds": float(offsets[-1] + 1 - last_t),
                }
            )
        best = min(
            (s["seconds"] for s in splits if s["distance_marker"] == float(s["order"])),
            default=None,
        )
        for s in splits:
            s["elevation_change"] = None
            s["is_best"] = s["seconds"] == best and s["distance_marker"] == float(s["order"])
        return {
            "distance_marker_display_unit": unit,
            "elevation_change_display_unit": unit_label("altitude", self.units),
            "splits": splits,
        }


def segment_list(ride: RideSpec) -> list[dict[str, Any]]:
    """The class plan as Peloton lists it (``[]`` for Just Ride/Run)."""
    return [
        {
            "id": s.segment_id,
            "length": s.length,
            "start_time_offset": s.start,
            "icon_url": f"{IMAGE_BASE}/segment-icons/{s.icon}.png",
            "intensity_in_mets": s.mets,
            "metrics_type": ride.spec.segment_metrics_type,
            "icon_name": s.icon,
            "icon_slug": s.icon,
            "name": s.name,
            "is_drill": False,
        }
        for s in ride.segments
    ]


def performance_graph(spec: WorkoutSpec, series: Series, every_n: int) -> dict[str, Any]:
    """The performance graph of ``spec`` sampled every ``every_n`` seconds."""
    first = spec.first_offset
    keep = [i for i, t in enumerate(series.offsets) if (t - first) % every_n == 0]
    builder = _Builder(spec, series)
    metrics: dict[str, dict[str, Any]] = {}
    for slug in METRICS_BY_MODEL[spec.spec.series]:
        metric = builder.metric(slug, keep)
        if metric is not None:
            metrics[slug] = metric
    hr = metrics.get("heart_rate")
    zones = (
        {f"heart_rate_z{i + 1}_duration": z["duration"] for i, z in enumerate(hr["zones"])}
        if hr
        else None
    )
    outdoor = spec.spec.is_outdoor
    return {
        "duration": spec.recorded,
        "is_class_plan_shown": bool(spec.ride.segments),
        "segment_list": segment_list(spec.ride),
        "seconds_since_pedaling_start": [series.offsets[i] for i in keep],
        "average_summaries": builder.average_summaries(metrics),
        "summaries": builder.summaries(),
        "metrics": list(metrics.values()),
        "has_apple_watch_metrics": False,
        "location_data": location_data(spec, series) if outdoor else [],
        "is_location_data_accurate": True if outdoor else None,
        "splits_data": builder.splits(),
        "effort_zones": None
        if zones is None
        else {
            "total_effort_points": round(
                sum((i + 1) * d for i, d in enumerate(zones.values())) / 60, 1
            ),
            "heart_rate_zone_durations": zones,
        },
    }
