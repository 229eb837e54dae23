"""SQL for events, their deliveries to webhooks and the attempts at those."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service import leases
from service.accounts.models import Account
from service.deliveries.models import Delivery
from service.destinations.kinds import webhook
from service.destinations.models import Destination
from service.events.models import (
    Event,
    EventAttempt,
    EventDelivery,
    EventDeliveryState,
)
from service.workouts.models import Workout

#: An event delivery with its event and its webhook.
Loaded = tuple[EventDelivery, Event, Destination]


def new_message_id() -> str:
    """A ``webhook-id`` for an event: ``evt_`` and 24 random hex digits."""
    return f"evt_{secrets.token_hex(12)}"


def _due(now: datetime) -> Any:
    """Pending, its time has come, and its webhook is enabled."""
    return (
        (EventDelivery.state == EventDeliveryState.PENDING)
        & (EventDelivery.next_attempt_at <= now)
        & exists().where(
            Destination.id == EventDelivery.destination_id, Destination.enabled.is_(True)
        )
    )


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- writing events ---------------------------------------------------------------------

    async def add(self, event: Event) -> Event | None:
        """Store ``event``; ``None`` (nothing stored) if its dedupe key is taken already, by
        an earlier emit or by another replica's at the same moment."""
        try:
            async with self.session.begin_nested():
                self.session.add(event)
        except IntegrityError:
            return None
        return event

    async def enabled_webhooks(self) -> list[Destination]:
        stmt = select(Destination).where(
            Destination.kind == webhook.KIND, Destination.enabled.is_(True)
        )
        return list((await self.session.execute(stmt.order_by(Destination.id))).scalars())

    async def add_deliveries(
        self, event_id: int, destination_ids: Sequence[int], now: datetime
    ) -> None:
        for destination_id in destination_ids:
            self.session.add(
                EventDelivery(
                    event_id=event_id,
                    destination_id=destination_id,
                    state=EventDeliveryState.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        await self.session.flush()

    async def subjects(
        self, delivery_id: int
    ) -> tuple[Delivery, Workout, Account, Destination] | None:
        """A delivery with its workout, account and destination (``None`` if gone)."""
        stmt = (
            select(Delivery, Workout, Account, Destination)
            .join(Workout, Workout.id == Delivery.workout_id)
            .join(Account, Account.id == Workout.account_id)
            .join(Destination, Destination.id == Delivery.destination_id)
            .where(Delivery.id == delivery_id)
        )
        row = (await self.session.execute(stmt)).first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    # --- conditions -------------------------------------------------------------------------

    async def account_statuses(self, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        stmt = select(Account.id, Account.status).where(Account.id.in_(ids))
        return {row[0]: row[1] for row in await self.session.execute(stmt)}

    async def destinations(self, ids: Sequence[int] | None = None) -> list[Destination]:
        """The destinations with these ids (every one when ``ids`` is None)."""
        stmt = select(Destination).order_by(Destination.id)
        if ids is not None:
            if not ids:
                return []
            stmt = stmt.where(Destination.id.in_(ids))
        return list((await self.session.execute(stmt)).scalars())

    async def delivery_states(self, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        stmt = select(Delivery.id, Delivery.state).where(Delivery.id.in_(ids))
        return {row[0]: row[1] for row in await self.session.execute(stmt)}

    # --- sending ----------------------------------------------------------------------------

    async def claim(self, owner: str, now: datetime, lease: timedelta, limit: int) -> list[int]:
        """Lease up to ``limit`` due event deliveries, oldest due first."""
        ids, _ = await leases.claim(
            self.session,
            EventDelivery,
            due=_due(now),
            order_by=EventDelivery.next_attempt_at,
            owner=owner,
            now=now,
            lease=lease,
            limit=limit,
        )
        return ids

    async def load(self, ids: Sequence[int]) -> list[Loaded]:
        if not ids:
            return []
        stmt = (
            select(EventDelivery, Event, Destination)
            .join(Event, Event.id == EventDelivery.event_id)
            .join(Destination, Destination.id == EventDelivery.destination_id)
            .where(EventDelivery.id.in_(ids))
            .order_by(EventDelivery.id)
        )
        return [(row[0], row[1], row[2]) for row in await self.session.execute(stmt)]

    async def finish(self, delivery_id: int, owner: str, **values: Any) -> bool:
        """Write the outcome and drop the lease, if ``owner`` still holds it."""
        return await leases.release(self.session, EventDelivery, delivery_id, owner, **values)

    async def add_attempt(self, attempt: EventAttempt) -> None:
        self.session.add(attempt)
        await self.session.flush()

    # --- reading ----------------------------------------------------------------------------

    async def page(
        self, *, limit: int, before_id: int | None, types: Sequence[str] | None
    ) -> list[Event]:
        """Up to ``limit`` events, newest first."""
        stmt = select(Event).order_by(Event.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(Event.id < before_id)
        if types:
            stmt = stmt.where(Event.type.in_(types))
        return list((await self.session.execute(stmt)).scalars())

    async def get(self, event_id: int) -> Event | None:
        return await self.session.get(Event, event_id)

    async def deliveries_of(self, event_ids: Sequence[int]) -> list[EventDelivery]:
        if not event_ids:
            return []
        stmt = (
            select(EventDelivery)
            .where(EventDelivery.event_id.in_(event_ids))
            .order_by(EventDelivery.event_id, EventDelivery.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def attempts_of(self, delivery_ids: Sequence[int]) -> list[EventAttempt]:
        if not delivery_ids:
            return []
        stmt = (
            select(EventAttempt)
            .where(EventAttempt.event_delivery_id.in_(delivery_ids))
            .order_by(EventAttempt.event_delivery_id, EventAttempt.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def unresolved(self, limit: int = 500) -> list[Event]:
        """The events whose condition has not cleared, newest first."""
        stmt = select(Event).where(Event.resolved_at.is_(None)).order_by(Event.id.desc())
        return list((await self.session.execute(stmt.limit(limit))).scalars())

    async def unresolved_counts(self) -> dict[str, int]:
        stmt = (
            select(Event.type, func.count()).where(Event.resolved_at.is_(None)).group_by(Event.type)
        )
        return {row[0]: row[1] for row in await self.session.execute(stmt)}

    async def resolve(self, event_ids: Sequence[int], now: datetime) -> None:
        if event_ids:
            await self.session.execute(
                update(Event)
                .where(Event.id.in_(event_ids), Event.resolved_at.is_(None))
                .values(resolved_at=now)
                .execution_options(synchronize_session=False)
            )
