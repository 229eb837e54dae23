"""What can be known to fail when a destination is created or edited, refused then rather than
at its first delivery: each a :class:`InvalidInput` naming the field and the fix.

- a webhook URL whose host is an IP address the SSRF guard refuses (loopback, private, cloud
  metadata...). A host *name* is not resolved here: its addresses may change, and they are
  checked before every delivery (and by the destination's ``test``);
- a Strava destination while the service has no Strava application configured and the
  destination brings none of its own (``config.client_id`` and ``secrets.client_secret``);
- a Garmin Connect destination while the experimental upload is off.

Missing credentials (intervals.icu, Garmin) and formats a kind cannot take are refused by
:mod:`.kinds_api` with the other config checks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import httpx

from service.config import Settings
from service.destinations.models import DestinationKind
from service.destinations.ssrf import AddressPolicy, UnsafeDestination, check_address
from service.errors import InvalidInput

STRAVA_UNCONFIGURED = (
    "kind: Strava is not configured on this service: create an API application at "
    "https://www.strava.com/settings/api, set PELOSYNC_STRAVA_CLIENT_ID and "
    "PELOSYNC_STRAVA_CLIENT_SECRET to its Client ID and Client Secret, and restart pelosync; "
    "or give this destination its own application (config.client_id and secrets.client_secret)"
)
GARMIN_OFF = (
    "kind: Garmin Connect uploads are experimental and off: set PELOSYNC_GARMIN_ENABLED=true "
    "and restart pelosync to use them"
)


def check_kind_available(
    settings: Settings,
    kind: str,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a new destination of a kind this service is not set up for."""
    own_app = bool((config or {}).get("client_id")) and bool((secrets or {}).get("client_secret"))
    if (
        kind == DestinationKind.STRAVA
        and not own_app
        and not (settings.strava_client_id and settings.strava_client_secret)
    ):
        raise InvalidInput(STRAVA_UNCONFIGURED, field="kind")
    if kind == DestinationKind.GARMIN and not settings.garmin_enabled:
        raise InvalidInput(GARMIN_OFF, field="kind")


async def check_reachable(settings: Settings, kind: str, config: Mapping[str, Any]) -> None:
    """Refuse a webhook URL whose IP address the SSRF guard would refuse at every delivery."""
    if kind != DestinationKind.WEBHOOK:
        return
    url = httpx.URL(str(config["url"]))  # validated already
    try:
        ipaddress.ip_address(url.raw_host.decode("ascii"))
    except ValueError:
        return  # a host name: resolved and checked before each delivery, and by `test`
    try:
        await check_address(url, AddressPolicy.from_settings(settings))
    except UnsafeDestination as exc:
        raise InvalidInput(f"config.url: {exc.message}", field="config.url") from None
