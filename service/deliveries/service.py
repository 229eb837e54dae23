"""Deliveries for the admin API and the dashboard: read them (filtered pages, one with its
attempts), retry one by hand, replay a destination over a date range. Every function takes the
request's session and only flushes. (The delivery engine is :mod:`service.deliveries.engine`.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import Reader
from service.deliveries import bulk, repository
from service.deliveries.models import Delivery, DeliveryAttempt, DeliveryState
from service.deliveries.repository import DeliveryRepository
from service.errors import Conflict, NotFound


async def page(
    reader: Reader,
    *,
    limit: int,
    before_id: int | None,
    state: str | None,
    destination_id: int | None,
    workout_id: int | None,
) -> list[Row[Any]]:
    """Up to ``limit + 1`` deliveries, newest first."""
    return await repository.page(
        reader,
        limit=limit + 1,
        before_id=before_id,
        state=state,
        destination_id=destination_id,
        workout_id=workout_id,
    )


async def get(session: AsyncSession, delivery_id: int) -> tuple[Delivery, list[DeliveryAttempt]]:
    """One delivery and its attempts, oldest first."""
    repo = DeliveryRepository(session)
    delivery = await repo.get(delivery_id)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found")
    return delivery, await repo.attempts(delivery_id)


async def retry_delivery(session: AsyncSession, delivery_id: int, now: datetime) -> Delivery:
    """Make a failed (or pending) delivery due now with a fresh retry budget.

    It keeps its message id: to the receiver this is the same message, sent again. Its
    attempts keep their numbers: the next one is numbered after the last.
    """
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found")
    if delivery.state == DeliveryState.SUCCEEDED:
        raise Conflict(f"delivery {delivery_id} already succeeded; replay it to send it again")
    delivery.state = DeliveryState.PENDING
    # Attempt numbers go on (the log keeps numbering them); the retry schedule starts again.
    delivery.budget_start = delivery.attempts
    delivery.next_attempt_at = now
    await session.flush()
    return delivery


async def replay(
    session: AsyncSession,
    destination_id: int,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> int:
    """Send every workout started in [start, end) to the destination again, as new messages
    (see :func:`service.deliveries.bulk.replay`). Returns how many deliveries are queued."""
    return await bulk.replay(session, destination_id, start=start, end=end, now=now)
