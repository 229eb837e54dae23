"""SQL for workouts."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    not_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import Reader, given
from service.deliveries.models import Delivery, DeliveryState
from service.dialect import insert_ignoring_duplicates
from service.workouts.models import Workout, WorkoutStatus

# The lists' SQL uses the tables' columns, not the mapped attributes: a statement without ORM
# entities is executed as plain Core, and its rows skip the ORM's result loading (a third of
# the query's CPU for a page of 50).
_WORKOUTS = Workout.__table__.c
_DELIVERIES = Delivery.__table__.c

# What lists show: every column but the raw Peloton documents (large; only for conversion).
SUMMARY_COLUMNS = tuple(
    column
    for column in Workout.__table__.columns
    if column.key not in {"raw_workout", "raw_performance_graph", "raw_ride_details"}
)

# The summary status (``WorkoutStatus``) in SQL, as ``summary_status`` computes it: the worst
# of the workout's delivery states, read in the list's own query (one index probe a row).
_WORST_DELIVERY = (
    select(
        func.min(
            case(
                (_DELIVERIES.state == DeliveryState.FAILED, 1),
                (_DELIVERIES.state == DeliveryState.PENDING, 2),
                (_DELIVERIES.state == DeliveryState.SUCCEEDED, 3),
            )
        )
    )
    .where(_DELIVERIES.workout_id == _WORKOUTS.id)
    .scalar_subquery()
)
STATUS_COLUMN = case(
    (_WORKOUTS.conversion_error.is_not(None), WorkoutStatus.UNCONVERTIBLE.value),
    else_=case(
        {
            1: WorkoutStatus.FAILED.value,
            2: WorkoutStatus.PENDING.value,
            3: WorkoutStatus.DELIVERED.value,
        },
        value=_WORST_DELIVERY,
        else_=WorkoutStatus.NO_DELIVERIES.value,
    ),
).label("status")
_PAGE = select(*SUMMARY_COLUMNS, STATUS_COLUMN).order_by(
    _WORKOUTS.started_at.desc(), _WORKOUTS.id.desc()
)


def _has(state: str) -> ColumnElement[bool]:
    return exists().where(_DELIVERIES.workout_id == _WORKOUTS.id, _DELIVERIES.state == state)


def status_condition(status: str) -> ColumnElement[bool]:
    """Workouts whose summary status (see ``WorkoutStatus``) is ``status``."""
    convertible = _WORKOUTS.conversion_error.is_(None)
    failed, pending = _has(DeliveryState.FAILED), _has(DeliveryState.PENDING)
    if status == WorkoutStatus.UNCONVERTIBLE:
        return not_(convertible)
    if status == WorkoutStatus.FAILED:
        return and_(convertible, failed)
    if status == WorkoutStatus.PENDING:
        return and_(convertible, not_(failed), pending)
    if status == WorkoutStatus.DELIVERED:
        return and_(convertible, not_(failed), not_(pending), _has(DeliveryState.SUCCEEDED))
    return and_(convertible, not_(exists().where(_DELIVERIES.workout_id == _WORKOUTS.id)))


# Performance machinery (benchmarks/api.py, the workouts list): a statement cache.
@functools.cache
def page_statement(
    after_cursor: bool,
    account: bool,
    discipline: bool,
    started_from: bool,
    started_before: bool,
    status: str | None,
) -> Select[Any]:
    """The list's statement for one combination of filters, with bind parameters: built and
    fingerprinted for the compiled cache once, not on every request (that cost more CPU than
    running it)."""
    stmt = _PAGE
    if after_cursor:
        cursor = tuple_(
            bindparam("cursor_started_at", type_=_WORKOUTS.started_at.type),
            bindparam("cursor_id", type_=Integer),
        )
        stmt = stmt.where(tuple_(_WORKOUTS.started_at, _WORKOUTS.id) < cursor)
    if account:
        stmt = stmt.where(_WORKOUTS.account_id == bindparam("account_id"))
    if discipline:
        stmt = stmt.where(_WORKOUTS.discipline == bindparam("discipline"))
    if started_from:
        stmt = stmt.where(_WORKOUTS.started_at >= bindparam("started_from"))
    if started_before:
        stmt = stmt.where(_WORKOUTS.started_at < bindparam("started_before"))
    if status is not None:
        stmt = stmt.where(status_condition(status))
    return stmt.limit(bindparam("limit", type_=Integer))


async def page(
    reader: Reader,
    *,
    limit: int,
    before: tuple[datetime, int] | None = None,
    account_id: int | None = None,
    discipline: str | None = None,
    started_from: datetime | None = None,
    started_before: datetime | None = None,
    status: str | None = None,
) -> list[Row[Any]]:
    """Summaries with their ``status``, newest first (started_at, id), strictly after the
    cursor ``before``."""
    stmt = page_statement(
        before is not None,
        account_id is not None,
        discipline is not None,
        started_from is not None,
        started_before is not None,
        status,
    )
    params = given(
        limit=limit,
        account_id=account_id,
        discipline=discipline,
        started_from=started_from,
        started_before=started_before,
    )
    if before is not None:
        params["cursor_started_at"], params["cursor_id"] = before
    return list(await reader.execute(stmt, params))


class WorkoutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known_ids(self, account_id: int, peloton_ids: Iterable[str]) -> set[str]:
        """Which of ``peloton_ids`` this account already has."""
        ids = list(peloton_ids)
        if not ids:
            return set()
        stmt = select(Workout.peloton_workout_id).where(
            Workout.account_id == account_id, Workout.peloton_workout_id.in_(ids)
        )
        return set((await self.session.execute(stmt)).scalars())

    async def add_new(self, values: dict[str, Any]) -> int | None:
        """Insert a workout unless the account already has it; its id, or None if it existed."""
        stmt = (
            insert_ignoring_duplicates(self.session, Workout, ("account_id", "peloton_workout_id"))
            .values(**values)
            .returning(Workout.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get(self, workout_id: int) -> Workout | None:
        return await self.session.get(Workout, workout_id)

    async def summary(self, workout_id: int) -> Row[Any] | None:
        stmt = select(*SUMMARY_COLUMNS).where(Workout.id == workout_id)
        return (await self.session.execute(stmt)).one_or_none()

    async def delivery_states(self, workout_ids: list[int]) -> dict[int, dict[str, int]]:
        """Deliveries by state for each workout."""
        if not workout_ids:
            return {}
        stmt = (
            select(Delivery.workout_id, Delivery.state, func.count())
            .where(Delivery.workout_id.in_(workout_ids))
            .group_by(Delivery.workout_id, Delivery.state)
        )
        states: dict[int, dict[str, int]] = {}
        for workout_id, state, count in await self.session.execute(stmt):
            states.setdefault(workout_id, {})[state] = count
        return states
