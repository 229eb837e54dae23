"""The periodic look at what the engines cannot see happen: credentials about to expire, and
conditions that have cleared.

* A Garmin destination's refresh token (``refresh_token_expires_at`` in its secrets, epoch
  seconds, else the token's own ``exp`` claim when it is a JWT) expiring within
  :data:`EXPIRY_WARNING`: ``destination.credentials_expiring``, once per token (its dedupe key
  names the destination and the expiry).
* Resolving: an event's condition has cleared when the account is no longer
  ``needs_reauth``, the destination is enabled again (or deleted), the delivery is no longer
  ``failed`` (retried, replayed), the Garmin token was replaced. The dashboard shows the
  unresolved events as problems.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.models import AccountStatus
from service.crypto import SecretBox
from service.deliveries.models import DeliveryState
from service.destinations.kinds import garmin
from service.destinations.kinds.garmin import jwt_claims
from service.destinations.models import Destination
from service.errors import PelosyncError
from service.events.models import Event, EventType
from service.events.repository import EventRepository
from service.events.service import destination_data, emit, iso

log = structlog.get_logger(__name__)

#: How long before a credential expires its destination.credentials_expiring is sent.
EXPIRY_WARNING = timedelta(days=7)

GARMIN_REFRESH_TOKEN = "garmin_refresh_token"


def garmin_refresh_expiry(secrets: dict[str, Any]) -> datetime | None:
    """When a Garmin destination's refresh token expires, if known."""
    value = secrets.get("refresh_token_expires_at")
    if not isinstance(value, int | float) or isinstance(value, bool):
        value = jwt_claims(str(secrets.get("refresh_token") or "")).get("exp")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _garmin_expiry(box: SecretBox, destination: Destination) -> datetime | None:
    try:
        return garmin_refresh_expiry(box.decrypt_json(destination.secrets_encrypted))
    except (PelosyncError, ValueError):  # a secret that will not decrypt: the engine says so
        return None


async def check_credentials(session: AsyncSession, box: SecretBox, now: datetime) -> int:
    """Emit ``destination.credentials_expiring`` for each enabled Garmin destination whose
    refresh token expires within :data:`EXPIRY_WARNING` (once per token); returns how many."""
    emitted = 0
    for destination in await EventRepository(session).destinations():
        if destination.kind != garmin.KIND or not destination.enabled:
            continue
        expires = _garmin_expiry(box, destination)
        if expires is None or expires - now > EXPIRY_WARNING:
            continue
        key = f"{GARMIN_REFRESH_TOKEN}:{destination.id}:{int(expires.timestamp())}"
        left = expires - now
        reason = (
            "the Garmin refresh token has expired"
            if left <= timedelta(0)
            else f"the Garmin refresh token expires in {_days(left)}"
        ) + ": paste new tokens into the destination"
        event = await emit(
            session,
            EventType.DESTINATION_CREDENTIALS_EXPIRING,
            {
                "destination": destination_data(destination),
                "credential": GARMIN_REFRESH_TOKEN,
                "revoked": False,
                "expires_at": iso(expires),
                "reason": reason,
            },
            now=now,
            destination_id=destination.id,
            dedupe_key=key,
        )
        emitted += event is not None
    return emitted


def _days(left: timedelta) -> str:
    hours = int(left.total_seconds() // 3600)
    if hours < 48:
        return f"{hours} hours" if hours != 1 else "1 hour"
    return f"{hours // 24} days"


async def resolve_cleared(session: AsyncSession, box: SecretBox, now: datetime) -> int:
    """Mark the unresolved events whose condition has cleared; returns how many."""
    repo = EventRepository(session)
    events = await repo.unresolved()
    if not events:
        return 0
    accounts = await repo.account_statuses([e.account_id for e in events if e.account_id])
    subjects = [e.destination_id for e in events if e.destination_id]
    destinations = {d.id: d for d in await repo.destinations(subjects)}
    deliveries = await repo.delivery_states([e.delivery_id for e in events if e.delivery_id])
    cleared = [
        event.id for event in events if _cleared(event, box, accounts, destinations, deliveries)
    ]
    await repo.resolve(cleared, now)
    if cleared:
        log.info("events.resolved", events=len(cleared))
    return len(cleared)


def _cleared(
    event: Event,
    box: SecretBox,
    accounts: dict[int, str],
    destinations: dict[int, Destination],
    deliveries: dict[int, str],
) -> bool:
    destination = destinations.get(event.destination_id or 0)
    if event.type == EventType.ACCOUNT_NEEDS_REAUTH:
        return accounts.get(event.account_id or 0) != AccountStatus.NEEDS_REAUTH
    if event.type == EventType.DELIVERY_FAILED:
        return deliveries.get(event.delivery_id or 0) != DeliveryState.FAILED
    if destination is None:
        return True
    if event.type == EventType.DESTINATION_DISABLED:
        return destination.enabled
    if event.type == EventType.DESTINATION_CREDENTIALS_EXPIRING:
        if event.payload.get("credential") == GARMIN_REFRESH_TOKEN:
            return iso(_garmin_expiry(box, destination)) != event.payload.get("expires_at")
        return destination.enabled  # Strava re-authorized: enabled again
    return True
