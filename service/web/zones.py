"""The rider's heart-rate zones, as a Peloton bundle carries them, for shading charts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Zone:
    """A heart-rate zone of the rider: ``low`` ≤ bpm < ``high``."""

    name: str
    low: float
    high: float
    label: str  # Peloton's own text, e.g. "124-142 bpm"


def heart_rate_zones(bundle: dict[str, Any]) -> list[Zone]:
    """The rider's heart-rate zones as the bundle's performance graph gives them (the heart
    rate metric's ``zones``: ``min_value``..``max_value`` bpm each, in order), or none when
    missing or not usable (a zone without numbers, zones out of order)."""
    graph = bundle.get("performance_graph")
    metrics = graph.get("metrics") if isinstance(graph, dict) else None
    found = [m for m in metrics or () if isinstance(m, dict) and m.get("slug") == "heart_rate"]
    raw = found[0].get("zones") if found else None
    zones: list[Zone] = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict):
            return []
        low, top = item.get("min_value"), item.get("max_value")
        if not isinstance(low, int | float) or not isinstance(top, int | float):
            return []
        if isinstance(low, bool) or isinstance(top, bool) or not low <= top < 1000:
            return []
        if zones and low < zones[-1].low:
            return []
        name = str(item.get("display_name") or f"Zone {len(zones) + 1}")[:40]
        zones.append(Zone(name, float(low), float(top) + 1, str(item.get("range") or "")[:40]))
    # Each zone reaches up to where the next one starts (Peloton's maxima are whole bpm).
    return [
        replace(zone, high=zones[i + 1].low) if i + 1 < len(zones) else zone
        for i, zone in enumerate(zones)
    ]
