"""Read queries the dashboard needs beyond the domain services' (joins for display)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.models import Account
from service.deliveries.models import Delivery, DeliveryAttempt
from service.destinations.models import Destination
from service.workouts.models import Workout


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery with what a list shows about its workout and destination."""

    delivery: Delivery
    workout_title: str
    workout_started_at: datetime
    workout_timezone: str | None
    discipline: str
    destination_name: str
    destination_kind: str
    attempts_log: list[DeliveryAttempt] = field(default_factory=list)


async def delivery_counts(session: AsyncSession) -> dict[int, dict[str, int]]:
    """Deliveries by state, per destination."""
    stmt = select(Delivery.destination_id, Delivery.state, func.count()).group_by(
        Delivery.destination_id, Delivery.state
    )
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for destination_id, state, count in await session.execute(stmt):
        counts[destination_id][state] = count
    return dict(counts)


async def destinations(session: AsyncSession) -> list[Destination]:
    stmt = select(Destination).order_by(Destination.id)
    return list((await session.execute(stmt)).scalars())


async def account_labels(session: AsyncSession) -> dict[int, str]:
    rows = await session.execute(select(Account.id, Account.label).order_by(Account.id))
    return {row[0]: row[1] for row in rows}


def _rows_stmt() -> Select[Delivery, str, datetime, str | None, str, str, str]:
    return (
        select(
            Delivery,
            Workout.title,
            Workout.started_at,
            Workout.timezone,
            Workout.discipline,
            Destination.name,
            Destination.kind,
        )
        .join(Workout, Workout.id == Delivery.workout_id)
        .join(Destination, Destination.id == Delivery.destination_id)
    )


async def delivery_rows(
    session: AsyncSession,
    *,
    state: str,
    limit: int,
    before_id: int | None = None,
    destination_id: int | None = None,
) -> list[DeliveryRow]:
    """Up to ``limit`` deliveries in ``state`` (of one destination, if given), newest first,
    ids below ``before_id``."""
    stmt = _rows_stmt().where(Delivery.state == state)
    if destination_id is not None:
        stmt = stmt.where(Delivery.destination_id == destination_id)
    if before_id is not None:
        stmt = stmt.where(Delivery.id < before_id)
    stmt = stmt.order_by(Delivery.id.desc()).limit(limit)
    return [DeliveryRow(*row) for row in await session.execute(stmt)]


async def workout_delivery_rows(session: AsyncSession, workout_id: int) -> list[DeliveryRow]:
    """A workout's deliveries with every attempt, oldest first."""
    stmt = _rows_stmt().where(Delivery.workout_id == workout_id).order_by(Delivery.id)
    rows = [DeliveryRow(*row) for row in await session.execute(stmt)]
    if not rows:
        return rows
    attempts = await session.execute(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_([r.delivery.id for r in rows]))
        .order_by(DeliveryAttempt.id)
    )
    by_delivery: dict[int, list[DeliveryAttempt]] = defaultdict(list)
    for attempt in attempts.scalars():
        by_delivery[attempt.delivery_id].append(attempt)
    for row in rows:
        row.attempts_log.extend(by_delivery.get(row.delivery.id, []))
    return rows


async def state_totals(session: AsyncSession) -> dict[str, int]:
    """Deliveries by state, across everything."""
    stmt = select(Delivery.state, func.count()).group_by(Delivery.state)
    return {row[0]: row[1] for row in await session.execute(stmt)}


async def disciplines(session: AsyncSession) -> list[str]:
    """The disciplines of the stored workouts (for the workouts filter)."""
    stmt = select(Workout.discipline).distinct().order_by(Workout.discipline)
    return list((await session.execute(stmt)).scalars())
