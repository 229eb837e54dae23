"""Public entry points of the data generator: realistic Peloton JSON without any HTTP.

>>> bundle = generate_bundle(7, "outdoor_run", units="metric")
>>> sorted(bundle)
['performance_graph', 'ride_details', 'workout']

Same arguments, same JSON: everything is derived from ``seed``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from service.errors import InvalidInput
from service.peloton.sandbox.catalog import KINDS, Units, kind_spec, validate_options
from service.peloton.sandbox.documents import ride_details_json, workout_json
from service.peloton.sandbox.graph import performance_graph
from service.peloton.sandbox.series import Series, generate_series
from service.peloton.sandbox.specs import (
    DEFAULT_ANCHOR,
    WorkoutSpec,
    derive,
    make_ride,
    make_user,
    make_workout,
)

__all__ = ["KINDS", "generate_bundle", "graph_json", "series_for", "validate_every_n"]

MAX_EVERY_N = 3600


# Bounded: a one-hour outdoor series holds ~0.5 MB of Python floats.
@lru_cache(maxsize=64)
def series_for(spec: WorkoutSpec) -> Series:
    """The (cached) base series of ``spec``; callers must not mutate it."""
    return generate_series(spec)


def validate_every_n(every_n: int) -> int:
    if isinstance(every_n, bool) or not isinstance(every_n, int) or not 1 <= every_n <= MAX_EVERY_N:
        raise InvalidInput(
            f"every_n must be a whole number from 1 to {MAX_EVERY_N}, got {every_n!r}"
        )
    return every_n


def graph_json(spec: WorkoutSpec, every_n: int = 1) -> dict[str, Any]:
    """The ``performance_graph`` document of ``spec`` sampled every ``every_n`` seconds."""
    return performance_graph(spec, series_for(spec), validate_every_n(every_n))


def bundle_spec(
    seed: int,
    kind: str,
    *,
    units: Units | None = None,
    timezone: str | None = None,
    heart_rate: bool | None = None,
    in_progress: bool = False,
    duration: int | None = None,
) -> WorkoutSpec:
    """The workout spec behind :func:`generate_bundle` (same arguments)."""
    validate_options(kind=kind, units=units, timezone=timezone, duration=duration)
    user = make_user(seed, 0, units=units, timezone=timezone)
    spec = kind_spec(kind)
    ride = None if spec.workout_type == "freestyle" else make_ride(seed, kind, 0, duration=duration)
    created_at = DEFAULT_ANCHOR - 3600 - derive(seed, "when") % (90 * 86400)
    length = ride.duration if ride else duration
    elapsed = max(1, (length or 1200) // 3) if in_progress else None
    return make_workout(
        derive(seed, "bundle", kind),
        user,
        kind,
        created_at,
        ride,
        duration=duration,
        heart_rate=heart_rate,
        elapsed=elapsed,
    )


def generate_bundle(
    seed: int,
    kind: str,
    *,
    every_n: int = 1,
    units: Units | None = None,
    timezone: str | None = None,
    heart_rate: bool | None = None,
    in_progress: bool = False,
    duration: int | None = None,
) -> dict[str, Any]:
    """A converter input bundle: ``{"workout", "performance_graph", "ride_details"}``.

    ``kind`` is one of :data:`KINDS`. Unset options (units, timezone, heart rate, duration) are
    drawn from ``seed``. ``ride_details`` is ``None`` for Just Ride/Run workouts, which have no
    class. Raises :class:`~service.errors.InvalidInput` for an unknown kind or a bad option.
    """
    validate_every_n(every_n)
    spec = bundle_spec(
        seed,
        kind,
        units=units,
        timezone=timezone,
        heart_rate=heart_rate,
        in_progress=in_progress,
        duration=duration,
    )
    return {
        "workout": workout_json(spec),
        "performance_graph": graph_json(spec, every_n),
        "ride_details": None if spec.ride.is_just_ride else ride_details_json(spec.ride),
    }
