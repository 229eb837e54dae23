"""Destinations: building each kind's handler from its stored row (through the registry)."""

from __future__ import annotations

from service.convert.fit import FitDevice
from service.destinations.kinds.base import DestinationKindHandler
from service.destinations.kinds.registry import KINDS
from service.destinations.kinds.spec import decrypted_secrets
from service.destinations.models import Destination
from service.errors import InvalidInput
from service.runtime import Runtime

__all__ = ["build_handler", "decrypted_secrets", "fit_device"]


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
