"""Every destination kind pelosync has: the one list the API, dashboard and engine read.

Adding a kind is its module (defining ``SPEC``, a :class:`~.spec.KindSpec`) and one line here
(docs/architecture.md, "Adding a destination kind"). The order is the dashboard's. The engine
builds a destination's handler (:func:`build_handler`) and its FIT device (:func:`fit_device`)
through this list too.
"""

from __future__ import annotations

from service.convert.fit import FitDevice
from service.destinations.kinds import directory, garmin, intervals, runalyze, strava, webhook
from service.destinations.kinds.base import DestinationKindHandler
from service.destinations.kinds.spec import KindSpec
from service.destinations.models import Destination
from service.errors import InvalidInput
from service.runtime import Runtime

KINDS: dict[str, KindSpec] = {
    spec.kind: spec
    for spec in (
        webhook.SPEC,
        directory.SPEC,
        strava.SPEC,
        intervals.SPEC,
        runalyze.SPEC,
        garmin.SPEC,
    )
}


def spec_for(kind: str) -> KindSpec:
    """The kind's spec; :class:`InvalidInput` (field ``kind``) for a kind pelosync lacks."""
    spec = KINDS.get(kind)
    if spec is None:
        raise InvalidInput(f"kind: unknown destination kind {kind!r}", field="kind")
    return spec


def build_handler(runtime: Runtime, destination: Destination) -> DestinationKindHandler:
    """The handler for a destination row (config validated; secrets decrypted in memory)."""
    spec = KINDS.get(destination.kind)
    if spec is None:
        raise InvalidInput(f"unknown destination kind {destination.kind!r}")
    return spec.factory(runtime, destination)


def fit_device(destination: Destination, discipline: str) -> FitDevice | None:
    """The device a destination's FIT files should claim (Garmin needs one per discipline)."""
    spec = KINDS.get(destination.kind)
    if spec is None or spec.fit_device is None:
        return None
    return spec.fit_device(destination, discipline)
