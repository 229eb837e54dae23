"""Steering deliveries by hand: retry one, replay a destination over a date range."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from service.deliveries import bulk
from service.deliveries.models import Delivery, DeliveryState
from service.errors import Conflict, NotFound


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
