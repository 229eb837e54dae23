"""Which destinations want which files of a workout."""

from __future__ import annotations

from service.convert.formats import can_write
from service.convert.pool import BundleSummary
from service.destinations.kinds.webhook import KIND as WEBHOOK
from service.destinations.models import Destination
from service.events.models import DEFAULT_SUBSCRIPTION, EventType


def wants(
    destination: Destination,
    account_id: int,
    discipline: str,
    *,
    origin: str | None = None,
    include_external: bool = False,
) -> bool:
    """Whether the destination takes this account's workouts of this discipline.

    A workout Peloton imported from another service (``origin``, see
    :func:`service.peloton.origin.workout_origin`) goes nowhere unless its account includes
    them (``include_external``): sending it back would duplicate it where it came from.
    Then the destination's filters, "all" when unset: accounts, disciplines. A webhook takes
    workouts only while it is subscribed to ``workout.synced`` (as it is by default).
    """
    if origin is not None and not include_external:
        return False
    if destination.kind == WEBHOOK and EventType.WORKOUT_SYNCED not in (
        (destination.config or {}).get("events") or DEFAULT_SUBSCRIPTION
    ):
        return False
    if destination.account_ids is not None and account_id not in destination.account_ids:
        return False
    return destination.disciplines is None or discipline in destination.disciplines


def writable_formats(destination: Destination, has_gps: bool) -> list[str]:
    """The destination's formats a workout can be written in (GPX needs GPS), so none is
    created to fail."""
    return [f for f in destination.formats if can_write(f, has_gps)]


def formats_for(
    destination: Destination,
    account_id: int,
    summary: BundleSummary,
    *,
    origin: str | None = None,
    include_external: bool = False,
) -> list[str]:
    """The formats ``destination`` should receive for this workout (empty: none): its
    filters (:func:`wants`), then its formats the workout can be written in."""
    if not wants(
        destination,
        account_id,
        summary.discipline,
        origin=origin,
        include_external=include_external,
    ):
        return []
    return writable_formats(destination, summary.has_gps)
