"""SQL for deliveries and their attempts."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    Text,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from service import leases
from service.accounts.models import Account
from service.convert.pool import RawBundle
from service.db import insert_ignoring_duplicates
from service.deliveries.models import Delivery, DeliveryAttempt, DeliveryState
from service.destinations.models import Destination
from service.workouts.models import Workout

#: A delivery with what an attempt at it needs (the workout's documents as JSON text).
Loaded = tuple[Delivery, Workout, Account, Destination, RawBundle]

_RAW = (Workout.raw_workout, Workout.raw_performance_graph, Workout.raw_ride_details)


#: A healthy destination's ``last_success_at`` is rewritten at most this often (see
#: :meth:`DeliveryRepository.mark_destination_healthy`).
SUCCESS_STAMP = timedelta(seconds=60)


def _ready(now: datetime) -> ColumnElement[bool]:
    """The destination takes deliveries now: enabled, not postponed (rate limited)."""
    return and_(
        Destination.enabled.is_(True),
        or_(Destination.postponed_until.is_(None), Destination.postponed_until <= now),
    )


def attempt_values(attempt: DeliveryAttempt) -> dict[str, Any]:
    """An (unsaved) attempt's column values, for a plain INSERT."""
    return {
        column.key: getattr(attempt, column.key)
        for column in DeliveryAttempt.__table__.columns
        if column.key != "id"
    }


def new_message_id() -> str:
    """A Standard Webhooks message id: stable for the delivery's whole life."""
    return "msg_" + secrets.token_hex(12)


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_pending(
        self, workout_id: int, destination_id: int, formats: list[str], *, now: datetime
    ) -> int:
        """One pending delivery per format, due at ``now`` (the caller's clock, so an injected
        clock governs the whole schedule); existing ones are left alone. Returns how many."""
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
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
                .returning(Delivery.id)
            )
            if (await self.session.execute(stmt)).scalar_one_or_none() is not None:
                created += 1
        return created

    async def claim_for_destination(
        self,
        destination_id: int,
        *,
        owner: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        check_destination: bool = False,
    ) -> list[int]:
        """Lease up to ``limit`` due deliveries of one destination (oldest due first);
        ``check_destination``: only if it is enabled and not postponed (else the caller found
        it with :meth:`due_destinations`)."""
        due = and_(
            Delivery.destination_id == destination_id,
            Delivery.state == DeliveryState.PENDING,
            Delivery.next_attempt_at <= now,
        )
        if check_destination:
            due = and_(due, exists().where(_ready(now), Destination.id == destination_id))
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

    async def due_destinations(self, now: datetime) -> list[Destination]:
        """Enabled, not postponed destinations with deliveries due now, by id.

        One query over the destinations, each checked with EXISTS (which stops at its first
        due delivery), rather than collecting every due delivery's destination: with a backlog
        this runs on every refill, and thousands of due rows would be read each time.
        """
        due = select(Delivery.id).where(
            Delivery.destination_id == Destination.id,
            Delivery.state == DeliveryState.PENDING,
            Delivery.next_attempt_at <= now,
            leases.lease_free(Delivery, now),
        )
        stmt = select(Destination).where(_ready(now), due.exists()).order_by(Destination.id)
        return list((await self.session.execute(stmt)).scalars())

    async def load(self, delivery_id: int) -> Loaded | None:
        return (await self.load_many([delivery_id])).get(delivery_id)

    async def load_many(self, delivery_ids: Sequence[int]) -> dict[int, Loaded]:
        """Deliveries with what an attempt needs (workout, account, destination), by id."""
        if not delivery_ids:
            return {}
        # The documents come as text for the converter process to decode (see RawBundle); the
        # Workout entity is loaded without them (and refuses to load them lazily).
        stmt = (
            select(Delivery, Workout, Account, Destination, *(sql_cast(c, Text) for c in _RAW))
            .join(Workout, Workout.id == Delivery.workout_id)
            .join(Account, Account.id == Workout.account_id)
            .join(Destination, Destination.id == Delivery.destination_id)
            .where(Delivery.id.in_(delivery_ids))
            .options(*(defer(c, raiseload=True) for c in _RAW))
        )
        rows = await self.session.execute(stmt)
        return {
            row[0].id: (row[0], row[1], row[2], row[3], RawBundle(row[4], row[5], row[6]))
            for row in rows
        }

    async def extend_leases(
        self, delivery_ids: Sequence[int], owner: str, until: datetime
    ) -> set[int]:
        """Push the expiry of the leases ``owner`` still holds among these; their ids."""
        if not delivery_ids:
            return set()
        stmt = (
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), leases.owner_guard(Delivery, owner))
            .values(lease_expires_at=until)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
        return set((await self.session.execute(stmt)).scalars())

    async def release_leases(self, delivery_ids: Sequence[int], owner: str) -> None:
        """Give back leases ``owner`` holds without having started the attempts."""
        stmt = (
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), leases.owner_guard(Delivery, owner))
            .values(lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(stmt)

    async def attempts_stored(self, attempts: Sequence[dict[str, Any]]) -> set[int]:
        """The deliveries of these attempt rows (``attempt_values``) whose row is stored
        already: a write whose commit landed although its answer was lost."""
        if not attempts:
            return set()
        stmt = select(DeliveryAttempt.delivery_id).where(
            or_(
                *(
                    and_(
                        DeliveryAttempt.delivery_id == row["delivery_id"],
                        DeliveryAttempt.number == row["number"],
                        DeliveryAttempt.worker == row["worker"],
                        DeliveryAttempt.started_at == row["started_at"],
                    )
                    for row in attempts
                )
            )
        )
        return set((await self.session.execute(stmt)).scalars())

    async def finish(self, delivery_id: int, owner: str, **values: Any) -> bool:
        return await leases.release(self.session, Delivery, delivery_id, owner, **values)

    async def held_leases(self, delivery_ids: Sequence[int], owner: str) -> set[int]:
        """Which of these deliveries ``owner`` still holds (locked until the transaction ends)."""
        stmt = select(Delivery.id).where(
            Delivery.id.in_(delivery_ids), leases.owner_guard(Delivery, owner)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return set((await self.session.execute(stmt)).scalars())

    async def release_many(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Write each delivery's new values and drop its lease: one statement per shape of
        values, run with many parameter sets. Check the leases with :meth:`held_leases` first."""
        table = cast(Table, Delivery.__table__)
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for delivery_id, values in rows:
            params = {f"v_{key}": value for key, value in values.items()}
            shapes.setdefault(tuple(sorted(values)), []).append({"v_id": delivery_id, **params})
        for keys, params_list in shapes.items():
            stmt = (
                update(table)
                .where(table.c.id == bindparam("v_id"))
                .values(
                    lease_owner=None,
                    lease_expires_at=None,
                    **{key: bindparam(f"v_{key}") for key in keys},
                )
            )
            await self.session.execute(stmt, params_list)

    async def add_attempt(self, attempt: DeliveryAttempt) -> None:
        """Insert the attempt's row: a plain INSERT, without the unit of work's flush."""
        await self.add_attempts([attempt_values(attempt)])

    async def add_attempts(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            table = cast(Table, DeliveryAttempt.__table__)
            await self.session.execute(insert(table), list(rows))

    async def mark_destination_healthy(
        self, destination_id: int, now: datetime, *, every: timedelta = SUCCESS_STAMP
    ) -> None:
        """After a success: clear ``failing_since`` and stamp ``last_success_at``.

        The row is written only when that changes something: it was failing, or its last
        success is older than ``every``. Every success rewriting it would make concurrent
        deliveries to one destination queue on its row lock; the condition is evaluated by the
        database, so a failure recorded meanwhile by another attempt is still cleared.
        """
        stmt = (
            update(Destination)
            .where(
                Destination.id == destination_id,
                or_(
                    Destination.failing_since.is_not(None),
                    Destination.last_success_at.is_(None),
                    Destination.last_success_at <= now - every,
                ),
            )
            .values(last_success_at=now, failing_since=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(stmt)

    async def pending_count(self) -> int:
        stmt = (
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.state == DeliveryState.PENDING)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    # --- the admin API's lists ----------------------------------------------------------------

    async def page(
        self,
        *,
        limit: int,
        before_id: int | None = None,
        state: str | None = None,
        destination_id: int | None = None,
        workout_id: int | None = None,
    ) -> list[Row[Any]]:
        """Deliveries (columns, not lease fields), newest first (by id), below ``before_id``."""
        columns = [c for c in Delivery.__table__.columns if not c.key.startswith("lease_")]
        stmt = select(*columns).order_by(Delivery.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(Delivery.id < before_id)
        if state is not None:
            stmt = stmt.where(Delivery.state == state)
        if destination_id is not None:
            stmt = stmt.where(Delivery.destination_id == destination_id)
        if workout_id is not None:
            stmt = stmt.where(Delivery.workout_id == workout_id)
        return list(await self.session.execute(stmt))

    async def get(self, delivery_id: int) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id)

    async def for_workout(self, workout_id: int) -> list[Delivery]:
        stmt = select(Delivery).where(Delivery.workout_id == workout_id).order_by(Delivery.id)
        return list((await self.session.execute(stmt)).scalars())

    async def attempts(self, delivery_id: int) -> list[DeliveryAttempt]:
        stmt = (
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(DeliveryAttempt.id)
        )
        return list((await self.session.execute(stmt)).scalars())
