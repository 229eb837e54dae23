"""Emitting operational events: one row per event and one pending delivery per webhook
subscribed to its type, written in the caller's transaction (so an event exists exactly when
the change it reports was committed, and is sent by :mod:`service.events.jobs` even if this
process dies right after).

Each emitter is called where the state changes, once per change: an account *becoming*
``needs_reauth``, a destination *becoming* disabled, a delivery *giving up*. A condition found
by a periodic check (:mod:`service.events.conditions`) carries a dedupe key instead, so it is
emitted once however often the check runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.models import Account
from service.destinations.kinds import strava
from service.destinations.models import Destination
from service.errors import NotFound
from service.events.models import DEFAULT_SUBSCRIPTION, Event, EventDelivery, EventType
from service.events.repository import EventRepository, new_message_id
from service.workouts.models import Workout

log = structlog.get_logger(__name__)


def iso(when: datetime | None) -> str | None:
    """A time as the events write it: ISO 8601 in UTC with a ``Z``."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def subscriptions(destination: Destination) -> list[str]:
    """The event types a webhook destination receives (its ``events`` setting)."""
    events = (destination.config or {}).get("events")
    return list(events) if isinstance(events, list) else [str(t) for t in DEFAULT_SUBSCRIPTION]


def subscribed(destination: Destination, event_type: str, account_id: int | None) -> bool:
    """Whether the webhook takes this event: subscribed to its type, and (for an event about
    an account) its account filter lets that account through."""
    if event_type not in subscriptions(destination):
        return False
    accounts = destination.account_ids
    return account_id is None or accounts is None or account_id in accounts


def account_data(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "label": account.label,
        "peloton_user_id": account.peloton_user_id,
        "peloton_username": account.peloton_username,
    }


def destination_data(destination: Destination) -> dict[str, Any]:
    return {"id": destination.id, "name": destination.name, "kind": destination.kind}


async def emit(
    session: AsyncSession,
    event_type: EventType,
    data: dict[str, Any],
    *,
    now: datetime,
    account_id: int | None = None,
    destination_id: int | None = None,
    delivery_id: int | None = None,
    workout_id: int | None = None,
    dedupe_key: str | None = None,
) -> Event | None:
    """Store an event (``data`` is its payload, ``occurred_at`` added) and queue it for every
    enabled webhook subscribed to it; ``None`` when ``dedupe_key`` was emitted before."""
    repo = EventRepository(session)
    event = await repo.add(
        Event(
            type=event_type.value,
            message_id=new_message_id(),
            account_id=account_id,
            destination_id=destination_id,
            delivery_id=delivery_id,
            workout_id=workout_id,
            dedupe_key=dedupe_key,
            payload={"occurred_at": iso(now), **data},
            created_at=now,
        )
    )
    if event is None:
        return None  # emitted before: its dedupe key is taken
    webhooks = [
        hook.id
        for hook in await repo.enabled_webhooks()
        if subscribed(hook, event_type, account_id)
    ]
    await repo.add_deliveries(event.id, webhooks, now)
    log.info("events.emitted", type=event_type.value, event_id=event.id, webhooks=len(webhooks))
    return event


async def account_needs_reauth(
    session: AsyncSession, account: Account, reason: str | None, *, now: datetime
) -> Event | None:
    """The account has just become ``needs_reauth`` (Peloton refused its credentials)."""
    return await emit(
        session,
        EventType.ACCOUNT_NEEDS_REAUTH,
        {"account": account_data(account), "reason": reason},
        now=now,
        account_id=account.id,
    )


async def destination_disabled(
    session: AsyncSession,
    destination: Destination,
    reason: str | None,
    *,
    now: datetime,
    needs_reauthorization: bool = False,
) -> None:
    """The destination has just been disabled by the engine (``reason`` as stored). A Strava
    destination refused for its authorization has also had its credentials revoked."""
    await emit(
        session,
        EventType.DESTINATION_DISABLED,
        {"destination": destination_data(destination), "reason": reason},
        now=now,
        destination_id=destination.id,
    )
    if needs_reauthorization and destination.kind == strava.KIND:
        await emit(
            session,
            EventType.DESTINATION_CREDENTIALS_EXPIRING,
            {
                "destination": destination_data(destination),
                "credential": "strava_authorization",
                "revoked": True,
                "expires_at": None,
                "reason": reason,
            },
            now=now,
            destination_id=destination.id,
        )


def workout_data(workout: Workout) -> dict[str, Any]:
    return {
        "id": workout.id,
        "peloton_workout_id": workout.peloton_workout_id,
        "title": workout.title,
        "discipline": workout.discipline,
        "start": iso(workout.started_at),
    }


async def delivery_failed(
    session: AsyncSession, delivery_id: int, last_error: str | None, *, now: datetime
) -> Event | None:
    """A delivery has given up for good (out of retries, or refused for good)."""
    found = await EventRepository(session).subjects(delivery_id)
    if found is None:
        return None
    delivery, workout, account, destination = found
    return await emit(
        session,
        EventType.DELIVERY_FAILED,
        {
            "delivery": {
                "id": delivery.id,
                "format": delivery.format,
                "message_id": delivery.message_id,
                "attempts": delivery.attempts,
                "last_error": last_error,
            },
            "workout": workout_data(workout),
            "account": account_data(account),
            "destination": destination_data(destination),
        },
        now=now,
        account_id=account.id,
        destination_id=destination.id,
        delivery_id=delivery.id,
        workout_id=workout.id,
    )


# --- reading ----------------------------------------------------------------------------------

EventWithDeliveries = tuple[Event, list[EventDelivery]]


async def listing(
    session: AsyncSession, *, limit: int, before_id: int | None, types: list[str] | None
) -> list[EventWithDeliveries]:
    """Up to ``limit`` events, newest first, each with its deliveries to webhooks."""
    repo = EventRepository(session)
    events = await repo.page(limit=limit, before_id=before_id, types=types)
    by_event: dict[int, list[EventDelivery]] = {event.id: [] for event in events}
    for delivery in await repo.deliveries_of(list(by_event)):
        by_event[delivery.event_id].append(delivery)
    return [(event, by_event[event.id]) for event in events]


async def one(session: AsyncSession, event_id: int) -> EventWithDeliveries:
    repo = EventRepository(session)
    event = await repo.get(event_id)
    if event is None:
        raise NotFound(f"event {event_id} not found")
    return event, await repo.deliveries_of([event_id])


async def open_problems(session: AsyncSession, limit: int = 5) -> tuple[int, list[Event]]:
    """How many events' conditions have not cleared (the dashboard's problems), and the
    newest ``limit`` of them."""
    repo = EventRepository(session)
    total = sum((await repo.unresolved_counts()).values())
    return total, (await repo.unresolved(limit=limit) if total else [])
