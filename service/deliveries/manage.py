"""Steering deliveries by hand: retry one, replay a destination over a date range."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.deliveries.models import Delivery, DeliveryState
from service.deliveries.repository import DeliveryRepository, new_message_id
from service.destinations.models import Destination
from service.errors import Conflict, NotFound
from service.workouts.models import Workout


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
    """Send every workout started in [start, end) to the destination again, as new messages.

    Existing deliveries are reset to pending with a NEW message id (a replay is a new message
    to the receiver, unlike a retry); missing ones are created. Returns how many are queued.
    """
    destination = await session.get(Destination, destination_id)
    if destination is None:
        raise NotFound(f"destination {destination_id} not found")
    workouts = (
        await session.execute(
            select(Workout).where(
                Workout.started_at >= start,
                Workout.started_at < end,
                Workout.conversion_error.is_(None),
            )
        )
    ).scalars()
    repo = DeliveryRepository(session)
    queued = 0
    for workout in workouts:
        if (
            destination.account_ids is not None
            and workout.account_id not in destination.account_ids
        ):
            continue
        if (
            destination.disciplines is not None
            and workout.discipline not in destination.disciplines
        ):
            continue
        formats = [f for f in destination.formats if f != "gpx" or workout.has_gps]
        await repo.create_pending(workout.id, destination.id, formats, now=now)
        rows = await session.execute(
            select(Delivery).where(
                Delivery.workout_id == workout.id,
                Delivery.destination_id == destination.id,
                Delivery.format.in_(formats),
                Delivery.lease_owner.is_(None),  # one being sent right now is left alone
            )
        )
        for delivery in rows.scalars():
            delivery.state = DeliveryState.PENDING
            delivery.budget_start = delivery.attempts
            delivery.next_attempt_at = now
            delivery.message_id = new_message_id()
            queued += 1
    await session.flush()
    return queued
