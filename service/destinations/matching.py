"""Which destinations want which files of a workout."""

from __future__ import annotations

from service.convert.pool import BundleSummary
from service.destinations.models import Destination


def formats_for(destination: Destination, account_id: int, summary: BundleSummary) -> list[str]:
    """The formats ``destination`` should receive for this workout (empty: none).

    Filters are "all" when unset: accounts, disciplines. A format the workout cannot be
    written in (GPX without GPS) is skipped rather than created to fail.
    """
    if destination.account_ids is not None and account_id not in destination.account_ids:
        return []
    if destination.disciplines is not None and summary.discipline not in destination.disciplines:
        return []
    return [f for f in destination.formats if f in summary.formats]
