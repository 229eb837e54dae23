"""Every destination kind pelosync has: the one list the API, dashboard and engine read.

Adding a kind is its module (defining ``SPEC``, a :class:`~.spec.KindSpec`) and one line here
(docs/architecture.md, "Adding a destination kind"). The order is the dashboard's.
"""

from __future__ import annotations

from service.destinations.kinds import directory, garmin, intervals, runalyze, strava, webhook
from service.destinations.kinds.spec import KindSpec
from service.errors import InvalidInput

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
