"""What can be known to fail when a destination is created or edited, refused then rather than
at its first delivery: each a :class:`InvalidInput` naming the field and the fix. Each kind's
spec holds its own checks (:class:`~.kinds.spec.KindSpec`); for example:

- a webhook URL whose host is an IP address the SSRF guard refuses (loopback, private, cloud
  metadata...);
- a folder outside PELOSYNC_EXPORT_ROOTS;
- a Strava destination while the service has no Strava application configured;
- a Garmin Connect destination while the experimental upload is off.

Missing credentials (intervals.icu, Runalyze, Garmin) and formats a kind cannot take are refused by
:mod:`.kinds_api` with the other config checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.config import Settings
from service.destinations.kinds.registry import spec_for


def check_kind_available(settings: Settings, kind: str) -> None:
    """Refuse a new destination of a kind this service is not set up for."""
    check = spec_for(kind).check_available
    if check is not None:
        check(settings)


async def check_config(settings: Settings, kind: str, config: Mapping[str, Any]) -> None:
    """Refuse validated settings known to fail at every delivery."""
    check = spec_for(kind).check_config
    if check is not None:
        await check(settings, config)
