"""Peloton display units to SI, with exact factors.

Peloton reports every metric and summary in the user's display preference, whatever the ride's
own unit, so each value is converted from its *own* ``display_unit`` (never a global setting).
"""

from __future__ import annotations

from service.errors import ConversionError

METRES_PER_MILE = 1609.344
METRES_PER_FOOT = 0.3048

DISTANCE_TO_M: dict[str, float] = {
    "mi": METRES_PER_MILE,
    "km": 1000.0,
    "m": 1.0,
    "ft": METRES_PER_FOOT,
    "yd": 0.9144,
}
SPEED_TO_MPS: dict[str, float] = {
    "mph": METRES_PER_MILE / 3600.0,
    "kph": 1000.0 / 3600.0,
    "km/h": 1000.0 / 3600.0,
    "m/s": 1.0,
}
# Pace units: minutes to cover this many metres.
PACE_METRES: dict[str, float] = {
    "min/mi": METRES_PER_MILE,
    "min/km": 1000.0,
    "min/500m": 500.0,
}


def _key(unit: str | None) -> str:
    return (unit or "").strip().lower()


def is_pace(unit: str | None) -> bool:
    return _key(unit) in PACE_METRES


def speed_factor(unit: str | None, *, what: str) -> float | None:
    """Multiplier from ``unit`` to m/s; None when ``unit`` is a pace (see ``pace_to_mps``)."""
    key = _key(unit)
    if key in SPEED_TO_MPS:
        return SPEED_TO_MPS[key]
    if key in PACE_METRES:
        return None
    raise ConversionError(f"{what}: unknown speed or pace unit {unit!r}")


def pace_to_mps(value: float, unit: str) -> float | None:
    """A pace (minutes per distance) as m/s; a zero or negative pace means no speed."""
    if value <= 0:
        return None
    return PACE_METRES[_key(unit)] / (value * 60.0)


def to_mps(value: float | None, unit: str | None, *, what: str) -> float | None:
    """One speed or pace value in m/s (None stays None)."""
    if value is None:
        return None
    factor = speed_factor(unit, what=what)
    if factor is None:
        return pace_to_mps(value, _key(unit))
    return value * factor


def distance_factor(unit: str | None, *, what: str) -> float:
    """Multiplier from ``unit`` to metres."""
    key = _key(unit)
    if key not in DISTANCE_TO_M:
        raise ConversionError(f"{what}: unknown distance unit {unit!r}")
    return DISTANCE_TO_M[key]
