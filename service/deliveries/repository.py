"""SQL for deliveries and their attempts."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from service import leases
from service.accounts.models import Account
from service.db import insert_ignoring_duplicates
from service.deliveries.models import Delivery, DeliveryAttempt, DeliveryState
from service.destinations.models import Destination
from service.workouts.models import Workout


def new_message_id() -> str:
    """A Standard Webhooks message id: stable for the delivery's whole life."""
    return "msg_" + secrets.token_hex(12)


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_pending(self, workout_id: int, destination_id: int, formats: list[str]) -> int:
        """One pending delivery per format; existing ones are left alone. Returns how many."""
        created = 0
        for fmt in formats:
            stmt = (
                insert_ignoring_duplicates(
                    self.session, Delivery, ("workout_id", "destination_id", "format")
                )
                .values(
                    workout_id=workout_id,
                    destination_id=destination_id,
                    format=fmt,
                    message_id=new_message_id(),
                    state="pending",
                    attempts=0,
                )
                .returning(Delivery.id)
            )
            if (await self.session.execute(stmt)).scalar_one_or_none() is not None:
                created += 1
        return created

    async def claim_for_destination(
        self, destination_id: int, *, owner: str, now: datetime, lease: timedelta, limit: int
    ) -> list[int]:
        """Lease up to ``limit`` due deliveries of one destination (oldest due first)."""
        due = and_(
            Delivery.destination_id == destination_id,
            Delivery.state == DeliveryState.PENDING,
            Delivery.next_attempt_at <= now,
        )
        ids, _ = await leases.claim(
            self.session,
            Delivery,
            due=due,
            order_by=Delivery.next_attempt_at,
            owner=owner,
            now=now,
            lease=lease,
            limit=limit,
        )
        return ids

    async def due_destination_ids(self, now: datetime) -> list[int]:
        """Enabled, not postponed destinations with deliveries due now."""
        stmt = (
            select(Delivery.destination_id)
            .join(Destination, Destination.id == Delivery.destination_id)
            .where(
                Delivery.state == DeliveryState.PENDING,
                Delivery.next_attempt_at <= now,
                leases.lease_free(Delivery, now),
                Destination.enabled.is_(True),
                or_(Destination.postponed_until.is_(None), Destination.postponed_until <= now),
            )
            .distinct()
        )
        return sorted((await self.session.execute(stmt)).scalars())

    async def load(self, delivery_id: int) -> tuple[Delivery, Workout, Account, Destination] | None:
        stmt = (
            select(Delivery, Workout, Account, Destination)
            .join(Workout, Workout.id == Delivery.workout_id)
            .join(Account, Account.id == Workout.account_id)
            .join(Destination, Destination.id == Delivery.destination_id)
            .where(Delivery.id == delivery_id)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        if row is None:
            return None
        return row[0], row[1], row[2], row[3]

    async def finish(self, delivery_id: int, owner: str, **values: Any) -> bool:
        return await leases.release(self.session, Delivery, delivery_id, owner, **values)

    async def add_attempt(self, attempt: DeliveryAttempt) -> None:
        self.session.add(attempt)
        await self.session.flush()

    async def pending_count(self) -> int:
        stmt = (
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.state == DeliveryState.PENDING)
        )
        return int((await self.session.execute(stmt)).scalar_one())
