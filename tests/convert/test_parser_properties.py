"""Invariants of the parser over generated performance graphs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from service.convert.peloton import parse_bundle
from service.convert.units import DISTANCE_TO_M
from tests.convert.strategies import bundles

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _metric(bundle: dict[str, Any], slug: str) -> dict[str, Any] | None:
    for m in bundle["performance_graph"]["metrics"]:
        if m["slug"] == slug:
            return m
    return None


@SETTINGS
@given(bundles())
def test_samples_carry_exactly_the_recorded_values(bundle: dict[str, Any]) -> None:
    act = parse_bundle(bundle)
    graph = bundle["performance_graph"]
    start = datetime.fromtimestamp(bundle["workout"]["start_time"], tz=UTC)
    by_offset = {s.offset_s: s for s in act.samples}
    offsets = graph["seconds_since_pedaling_start"]
    assert set(offsets) <= set(by_offset)
    for s in act.samples:
        assert s.time == start + timedelta(seconds=s.offset_s)
    for slug, attr in (("heart_rate", "heart_rate"), ("output", "power")):
        m = _metric(bundle, slug)
        got = [getattr(by_offset[o], attr) for o in offsets]
        if m is None:
            assert all(v is None for v in got)
        else:
            want = [v if v not in (None, 0) or slug != "heart_rate" else None for v in m["values"]]
            assert got == want
    # GPS positions sit at their own offsets, from non-gap segments only
    for loc in graph["location_data"]:
        for c in loc["coordinates"]:
            if loc["is_gap"]:
                continue
            s = by_offset[c["seconds_offset_from_start"]]
            assert (s.latitude, s.longitude) == (c["latitude"], c["longitude"])


@SETTINGS
@given(bundles())
def test_distance_is_monotonic_and_matches_summary(bundle: dict[str, Any]) -> None:
    act = parse_bundle(bundle)
    dists = [s.distance for s in act.samples if s.distance is not None]
    assert dists == sorted(dists)
    reported = [x for x in bundle["performance_graph"]["summaries"] if x["slug"] == "distance"]
    if reported and dists and dists[-1] > 0:
        total = reported[0]["value"] * DISTANCE_TO_M[reported[0]["display_unit"]]
        assert dists[-1] == pytest.approx(total, rel=0.005)
        assert act.summary.distance_m == pytest.approx(total)


@SETTINGS
@given(bundles())
def test_laps_are_contiguous_and_add_up(bundle: dict[str, Any]) -> None:
    act = parse_bundle(bundle)
    assert act.laps and act.laps[0].start_offset_s == 0
    assert sum(lap.stats.duration_s for lap in act.laps) == pytest.approx(
        (act.end - act.start).total_seconds()
    )
    starts = [lap.start_offset_s for lap in act.laps]
    assert starts == sorted(set(starts))
    calories = act.summary.calories_kcal
    if calories is not None:
        assert sum(lap.stats.calories_kcal or 0 for lap in act.laps) == pytest.approx(calories)
    if act.summary.distance_m is not None and any(s.distance is not None for s in act.samples):
        lap_sum = sum(lap.stats.distance_m or 0 for lap in act.laps)
        last = [s.distance for s in act.samples if s.distance is not None][-1]
        assert lap_sum == pytest.approx(last)
