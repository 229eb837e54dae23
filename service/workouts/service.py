"""Workouts for the admin API: filtered pages, one with its deliveries, its files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from service.convert.formats import FORMATS, Format, can_write
from service.db import Reader
from service.deliveries.models import Delivery, DeliveryState
from service.deliveries.repository import DeliveryRepository
from service.errors import NotFound
from service.runtime import Runtime
from service.workouts import repository
from service.workouts.models import WorkoutStatus
from service.workouts.repository import WorkoutRepository


@dataclass(frozen=True)
class File:
    data: bytes
    filename: str
    content_type: str


def summary_status(conversion_error: str | None, states: dict[str, int]) -> WorkoutStatus:
    """The workout's status from its deliveries' states, worst first."""
    if conversion_error is not None:
        return WorkoutStatus.UNCONVERTIBLE
    for state, status in (
        (DeliveryState.FAILED, WorkoutStatus.FAILED),
        (DeliveryState.PENDING, WorkoutStatus.PENDING),
        (DeliveryState.SUCCEEDED, WorkoutStatus.DELIVERED),
    ):
        if states.get(state):
            return status
    return WorkoutStatus.NO_DELIVERIES


def formats_of(has_gps: bool) -> list[str]:
    return [f.value for f in Format if can_write(f, has_gps)]


async def page(
    reader: Reader,
    *,
    limit: int,
    before: tuple[datetime, int] | None,
    account_id: int | None,
    discipline: str | None,
    started_from: datetime | None,
    started_before: datetime | None,
    status: str | None,
) -> list[Row[Any]]:
    """Up to ``limit + 1`` workout summaries (with ``status``), newest first."""
    return await repository.page(
        reader,
        limit=limit + 1,
        before=before,
        account_id=account_id,
        discipline=discipline,
        started_from=started_from,
        started_before=started_before,
        status=status,
    )


def _summary(row: Row[Any], states: dict[str, int]) -> dict[str, Any]:
    values = dict(row._mapping)
    values["status"] = summary_status(row.conversion_error, states)
    return values


async def get(session: AsyncSession, workout_id: int) -> tuple[dict[str, Any], list[Delivery]]:
    """One workout's summary and its deliveries."""
    row = await WorkoutRepository(session).summary(workout_id)
    if row is None:
        raise NotFound(f"workout {workout_id} not found")
    deliveries = await DeliveryRepository(session).for_workout(workout_id)
    states: dict[str, int] = {}
    for delivery in deliveries:
        states[delivery.state] = states.get(delivery.state, 0) + 1
    return _summary(row, states), deliveries


async def exists(session: AsyncSession, workout_id: int) -> None:
    if await WorkoutRepository(session).summary(workout_id) is None:
        raise NotFound(f"workout {workout_id} not found")


async def render(runtime: Runtime, session: AsyncSession, workout_id: int, fmt: Format) -> File:
    """The workout converted to ``fmt`` (off the event loop); 422 if it cannot be."""
    workout = await WorkoutRepository(session).get(workout_id)
    if workout is None:
        raise NotFound(f"workout {workout_id} not found")
    data = await runtime.converter.render(workout.bundle(), fmt.value)
    return File(data, workout.file_name(fmt.value), FORMATS[fmt].content_type)
