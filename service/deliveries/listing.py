"""Reading deliveries for the admin API: filtered pages, one with its attempts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import Reader
from service.deliveries import repository
from service.deliveries.models import Delivery, DeliveryAttempt
from service.deliveries.repository import DeliveryRepository
from service.errors import NotFound


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
    repo = DeliveryRepository(session)
    delivery = await repo.get(delivery_id)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found")
    return delivery, await repo.attempts(delivery_id)
