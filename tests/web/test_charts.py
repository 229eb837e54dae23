"""The dashboard's server-side SVG: decimation, axes, metric charts, route outlines."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from service.convert.model import Sample
from service.convert.peloton import parse_bundle
from service.peloton.sandbox import generate_bundle
from service.web import charts
from service.web.charts import (
    BOTTOM,
    HEIGHT,
    LEFT,
    METRICS,
    RIGHT,
    ROUTE_PAD,
    ROUTE_SIZE,
    TOP,
    WIDTH,
    Metric,
    decimate,
    metric_chart,
    route_outline,
    segments,
    time_ticks,
    value_axis,
)

SVG = "{http://www.w3.org/2000/svg}"
POWER = next(m for m in METRICS if m.key == "power")
START = datetime(2026, 3, 1, 7, tzinfo=UTC)


def parse(svg: str | None) -> etree._Element:
    assert svg is not None
    return etree.fromstring(svg.encode())


def subpaths(d: str) -> list[list[tuple[float, float]]]:
    """The points of each ``M…L…`` run of a path."""
    runs = []
    for run in d.split("M")[1:]:
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", run)]
        runs.append(list(zip(numbers[::2], numbers[1::2], strict=True)))
    return runs


def sample(offset: float, **values: float | None) -> Sample:
    return Sample(offset_s=offset, time=START + timedelta(seconds=offset), **values)  # type: ignore[arg-type]


# --- series and decimation ----------------------------------------------------------------------


def test_segments_split_at_gaps_and_convert_units() -> None:
    samples = [
        sample(0, speed=2.0),
        sample(1, speed=3.0),
        sample(2),
        sample(3, speed=float("nan")),
        sample(4, speed=5.0),
    ]
    speed = next(m for m in METRICS if m.key == "speed")
    assert segments(samples, speed) == [[(0, 7.2), (1, 10.8)], [(4, 18.0)]]
    assert segments(samples, POWER) == []


def test_decimate_keeps_short_series_whole_and_refuses_tiny_budgets() -> None:
    points = [(float(i), float(i % 7)) for i in range(50)]
    assert decimate(points, 50) == points
    with pytest.raises(ValueError, match="at least 2"):
        decimate(points, 1)


@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=3000),
    st.integers(min_value=2, max_value=700),
)
def test_decimate_bounds_the_points_keeps_order_and_extremes(
    values: list[float], budget: int
) -> None:
    points = [(float(i), v) for i, v in enumerate(values)]
    kept = decimate(points, budget)
    assert len(kept) <= max(budget, 2)
    assert kept == sorted(kept)  # time order
    assert set(kept) <= set(points)
    assert min(v for _, v in kept) == min(values)
    assert max(v for _, v in kept) == max(values)


# --- axes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "from_zero", "expected"),
    [
        (83.0, 181.0, False, [75, 100, 125, 150, 175, 200]),
        (83.0, 181.0, True, [0, 50, 100, 150, 200]),
        (2.1, 2.9, True, [0, 1, 2, 3]),
        (120.0, 120.0, False, [119, 119.5, 120, 120.5, 121]),
    ],
)
def test_value_axis_has_round_ticks_covering_the_values(
    low: float, high: float, from_zero: bool, expected: list[float]
) -> None:
    assert value_axis(low, high, from_zero=from_zero) == expected


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (90, [0, 15, 30, 45, 60, 75, 90]),
        (1200, [0, 300, 600, 900, 1200]),
        (3700, [0, 900, 1800, 2700, 3600]),
    ],
)
def test_time_ticks_are_round_times(duration: float, expected: list[int]) -> None:
    assert time_ticks(duration) == expected


def test_clock_text() -> None:
    assert charts.clock(59.6) == "1:00"
    assert charts.clock(3725) == "1:02:05"


# --- the metric chart ---------------------------------------------------------------------------


def test_metric_chart_maps_values_and_time_onto_the_plot() -> None:
    parts = [[(0.0, 100.0), (300.0, 200.0), (600.0, 150.0)]]
    laps = [(0.0, "Warmup"), (300.0, "Main <set>"), (600.0, "after the end")]
    root = parse(metric_chart(parts, POWER, duration_s=600, laps=laps))
    assert root.get("class") == "chart chart-power"
    assert root.findtext(f"{SVG}title") == "Power (W)"
    # Axis 0..200 W (from zero), 0..600 s.
    ticks = [t.text for t in root.iter(f"{SVG}text") if "y" in t.get("class", "").split()]
    assert ticks == ["0", "50", "100", "150", "200"]
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    ((first, middle, last),) = subpaths(root.find(f"{SVG}path").get("d"))
    assert first == pytest.approx((LEFT, bottom - (bottom - TOP) / 2), abs=0.05)
    assert middle == pytest.approx((LEFT + (right - LEFT) / 2, TOP), abs=0.05)
    assert last == pytest.approx((right, bottom - (bottom - TOP) * 0.75), abs=0.05)
    # One lap line, inside the plot: the one starting at 0 and the one at the very end are not.
    (lap,) = [line for line in root.iter(f"{SVG}line") if line.get("class") == "lap"]
    assert float(lap.get("x1")) == pytest.approx(middle[0], abs=0.05)
    assert lap.findtext(f"{SVG}title") == "Main <set> from 5:00"


def test_metric_chart_draws_gaps_as_separate_runs_within_the_budget() -> None:
    parts = [
        [(float(t), 100 + 50 * math.sin(t / 30)) for t in range(1800)],
        [(float(t), 120.0) for t in range(1900, 3600)],
    ]
    hr = next(m for m in METRICS if m.key == "heart_rate")
    root = parse(metric_chart(parts, hr, duration_s=3600, max_points=400))
    runs = subpaths(root.find(f"{SVG}path").get("d"))
    assert len(runs) == 2
    assert sum(len(r) for r in runs) <= 400
    xs = [x for run in runs for x, _ in run]
    assert xs == sorted(xs) and xs[0] >= LEFT and xs[-1] <= WIDTH - RIGHT
    ys = [y for run in runs for _, y in run]
    assert min(ys) >= TOP and max(ys) <= HEIGHT - BOTTOM


def test_metric_chart_of_nothing_is_none() -> None:
    assert metric_chart([], POWER, duration_s=600) is None
    assert metric_chart([[]], POWER, duration_s=600) is None


def test_labels_are_escaped() -> None:
    metric = Metric("power", 'Watts "<b>"', "W&A")
    svg = metric_chart([[(0.0, 1.0), (1.0, 2.0)]], metric, duration_s=1)
    root = parse(svg)  # well-formed XML
    assert root.findtext(f"{SVG}title") == 'Watts "<b>" (W&A)'
    assert root.get("aria-label") == 'Watts "<b>" (W&A)'


# --- the route ----------------------------------------------------------------------------------


def test_route_keeps_its_proportions_with_north_up() -> None:
    # 0.02° of longitude by 0.01° of latitude at 60° N: as wide as it is tall on the ground.
    square = [(60.0, 10.0), (60.0, 10.02), (60.01, 10.02), (60.01, 10.0), (60.0, 10.0)]
    root = parse(route_outline([square]))
    _, _, width, height = (float(v) for v in root.get("viewBox").split())
    inner_w, inner_h = width - 2 * ROUTE_PAD, height - 2 * ROUTE_PAD
    shrink = math.cos(math.radians(60.005))
    assert inner_w / inner_h == pytest.approx(0.02 * shrink / 0.01, rel=1e-3)
    assert max(inner_w, inner_h) == pytest.approx(ROUTE_SIZE - 2 * ROUTE_PAD, abs=0.1)
    ((south_west, south_east, north_east, *_),) = subpaths(root.find(f"{SVG}path").get("d"))
    assert south_east[0] > south_west[0]  # east is right
    assert north_east[1] < south_east[1]  # north is up
    start = root.find(f"{SVG}circle[@class='start']")
    assert (float(start.get("cx")), float(start.get("cy"))) == pytest.approx(south_west, abs=0.05)


def test_route_segments_and_degenerate_routes() -> None:
    tracks = [[(52.5, 13.3), (52.51, 13.31)], [(52.52, 13.33), (52.53, 13.34)]]
    root = parse(route_outline(tracks))
    assert len(subpaths(root.find(f"{SVG}path").get("d"))) == 2
    finish = root.find(f"{SVG}circle[@class='finish']")
    assert finish is not None
    assert route_outline([]) is None
    assert route_outline([[(52.5, 13.3), (52.5, 13.3)]]) is None  # standing still
    north_south = route_outline([[(52.5, 13.3), (52.6, 13.3)]])
    _, _, width, _ = (float(v) for v in parse(north_south).get("viewBox").split())
    assert width == pytest.approx(2 * ROUTE_PAD)


@given(
    st.lists(
        st.tuples(st.floats(-80, 80), st.floats(-179, 179)), min_size=2, max_size=200, unique=True
    )
)
def test_route_points_stay_inside_the_box(points: list[tuple[float, float]]) -> None:
    svg = route_outline([points], max_points=50)
    assert svg is not None
    root = parse(svg)
    _, _, width, height = (float(v) for v in root.get("viewBox").split())
    (run,) = subpaths(root.find(f"{SVG}path").get("d"))
    assert len(run) <= 51
    for x, y in run:
        assert -0.05 <= x <= width + 0.05 and -0.05 <= y <= height + 0.05


# --- a whole workout ----------------------------------------------------------------------------


def test_workout_charts_of_a_ride_and_an_outdoor_run() -> None:
    ride = parse_bundle(generate_bundle(3, "cycling_class", heart_rate=True))
    drawn = charts.workout_charts(ride)
    keys = [c.metric.key for c in drawn.charts]
    assert keys == ["heart_rate", "power", "cadence", "speed", "resistance"]
    assert drawn.route is None
    cadence = next(c for c in drawn.charts if c.metric.key == "cadence")
    assert cadence.metric.unit == "rpm"
    power = next(c for c in drawn.charts if c.metric.key == "power")
    watts = [s.power for s in ride.samples if s.power is not None]
    assert power.maximum == max(watts)
    assert power.average == pytest.approx(sum(watts) / len(watts))
    laps = [lap for lap in ride.laps if lap.start_offset_s > 0]
    for chart in drawn.charts:
        root = parse(chart.svg)
        assert len([e for e in root.iter(f"{SVG}line") if e.get("class") == "lap"]) == len(laps)
        points = sum(len(r) for r in subpaths(root.find(f"{SVG}path").get("d")))
        assert 100 < points <= charts.MAX_POINTS
    assert [lap.name for lap in drawn.laps] == [lap.name for lap in ride.laps]
    assert drawn.duration_s == ride.duration.total_seconds()

    run = charts.charts_for_bundle(generate_bundle(3, "outdoor_run", heart_rate=True))
    assert run.route is not None and "speed" in [c.metric.key for c in run.charts]
    (path,) = parse(run.route).iter(f"{SVG}path")
    assert sum(len(r) for r in subpaths(path.get("d"))) <= charts.MAX_POINTS + 2


# --- readability: labels inside the box, units, zones, resistance ------------------------------


@given(st.floats(min_value=1, max_value=4 * 3600))
def test_time_labels_stay_inside_the_chart(duration: float) -> None:
    parts = [[(0.0, 100.0), (duration, 120.0)]]
    root = parse(metric_chart(parts, POWER, duration_s=duration))
    labels = [t for t in root.iter(f"{SVG}text") if "x" in t.get("class", "").split()]
    for label in labels:
        x = float(label.get("x"))
        if "end" in label.get("class", "").split():
            assert x <= WIDTH  # the text ends there
        else:
            assert x + charts.HALF_TIME_LABEL <= WIDTH, (duration, label.text)


def test_every_chart_names_its_unit() -> None:
    for metric in METRICS:
        root = parse(metric_chart([[(0.0, 1.0), (60.0, 2.0)]], metric, duration_s=60))
        (unit,) = [t for t in root.iter(f"{SVG}text") if t.get("class") == "unit"]
        assert unit.text == metric.unit
        assert float(unit.get("y")) < TOP  # above the plot


def test_rides_get_a_resistance_chart_and_runs_none() -> None:
    ride = charts.charts_for_bundle(generate_bundle(4, "cycling_class", heart_rate=True))
    resistance = next(c for c in ride.charts if c.metric.key == "resistance")
    assert resistance.metric.unit == "%" and 0 < resistance.average <= resistance.maximum <= 100
    run = charts.charts_for_bundle(generate_bundle(4, "outdoor_run", heart_rate=True))
    assert "resistance" not in [c.metric.key for c in run.charts]


def test_heart_rate_zones_shade_the_heart_rate_chart_only() -> None:
    bundle = generate_bundle(4, "cycling_class", heart_rate=True)
    zones = charts.heart_rate_zones(bundle)
    assert [z.name for z in zones] == [f"Zone {i}" for i in range(1, 6)]
    assert all(a.high == b.low for a, b in zip(zones, zones[1:], strict=False))  # no gaps
    drawn = charts.charts_for_bundle(bundle)
    assert list(drawn.zones) == zones
    for chart in drawn.charts:
        rects = [r for r in parse(chart.svg).iter(f"{SVG}rect") if "zone" in r.get("class", "")]
        if chart.metric.key != "heart_rate":
            assert rects == []
            continue
        assert rects, "the heart-rate chart shades the zones it shows"
        for rect in rects:
            top, height = float(rect.get("y")), float(rect.get("height"))
            assert top >= TOP - 0.05 and top + height <= HEIGHT - BOTTOM + 0.05  # in the plot
            assert rect.findtext(f"{SVG}title").startswith("Zone ")


@pytest.mark.parametrize(
    "zones",
    [
        None,
        "zones",
        [],
        [{"min_value": 0, "max_value": "high"}],
        [{"min_value": 150, "max_value": 120}],
        [{"min_value": 120, "max_value": 150}, {"min_value": 100, "max_value": 119}],
        [{"min_value": True, "max_value": 3}],
        ["zone1"],
    ],
)
def test_unusable_zones_shade_nothing(zones: object) -> None:
    bundle = generate_bundle(4, "cycling_class", heart_rate=True)
    for metric in bundle["performance_graph"]["metrics"]:
        if metric["slug"] == "heart_rate":
            metric["zones"] = zones
    assert charts.heart_rate_zones(bundle) == []
    assert charts.charts_for_bundle(bundle).zones == ()
    assert charts.heart_rate_zones({"performance_graph": "x"}) == []
