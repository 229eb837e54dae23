"""Deliveries by hand, several at a time: retry a destination's failed ones, send chosen
workouts to a destination, replay a date range (and see what a replay would queue first).

Every function only flushes; the request (or CLI command) commits. The SQL is
:class:`BulkRepository`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from service.accounts.models import Account
from service.deliveries.models import Delivery, DeliveryState
from service.deliveries.repository import DeliveryRepository, new_message_id
from service.destinations.matching import wants, writable_formats
from service.destinations.models import Destination
from service.errors import InvalidInput, NotFound
from service.workouts.models import Workout

MAX_SEND = 500  # workouts sent in one request: a larger set is a replay


# What planning reads of a workout: never its raw documents (hundreds of KB each).
PLANNED_COLUMNS = (
    Workout.id,
    Workout.account_id,
    Workout.title,
    Workout.discipline,
    Workout.started_at,
    Workout.timezone,
    Workout.has_gps,
    Workout.conversion_error,
    Workout.origin,
)


class BulkRepository:
    """SQL for the functions below."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def workouts_started(self, start: datetime, end: datetime) -> list[Workout]:
        """Convertible workouts started in [start, end), oldest first."""
        stmt = (
            select(Workout)
            .options(load_only(*PLANNED_COLUMNS))
            .where(
                Workout.started_at >= start,
                Workout.started_at < end,
                Workout.conversion_error.is_(None),
            )
            .order_by(Workout.started_at, Workout.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def workouts(self, workout_ids: list[int]) -> list[Workout]:
        stmt = (
            select(Workout)
            .options(load_only(*PLANNED_COLUMNS))
            .where(Workout.id.in_(workout_ids))
            .order_by(Workout.started_at)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def idle_deliveries(
        self, workout_id: int, destination_id: int, formats: list[str]
    ) -> list[Delivery]:
        """The workout's deliveries to the destination in these formats, except any being
        sent right now (left alone)."""
        stmt = select(Delivery).where(
            Delivery.workout_id == workout_id,
            Delivery.destination_id == destination_id,
            Delivery.format.in_(formats),
            Delivery.lease_owner.is_(None),
        )
        return list((await self.session.execute(stmt)).scalars())

    async def including_external(self) -> set[int]:
        """The accounts that have workouts imported from other services delivered."""
        stmt = select(Account.id).where(Account.include_external.is_(True))
        return set((await self.session.execute(stmt)).scalars())

    async def count_failed(self, destination_id: int) -> int:
        stmt = select(func.count()).where(
            Delivery.destination_id == destination_id, Delivery.state == DeliveryState.FAILED
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def retry_failed(self, destination_id: int, now: datetime) -> int:
        """Every failed delivery of the destination due now with a fresh budget; how many."""
        stmt = (
            update(Delivery)
            .where(
                Delivery.destination_id == destination_id, Delivery.state == DeliveryState.FAILED
            )
            .values(
                state=DeliveryState.PENDING,
                # Attempt numbers go on; the retry schedule starts again (deliveries/service.py)
                budget_start=Delivery.attempts,
                next_attempt_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Planned:
    """A workout a replay or send would queue, in these formats."""

    workout: Workout
    formats: list[str]


@dataclass
class SendResult:
    queued: int = 0
    # (workout id, why it was not sent): not convertible, or no format of the destination fits.
    skipped: list[tuple[int, str]] = field(default_factory=list)


async def _destination(session: AsyncSession, destination_id: int) -> Destination:
    destination = await session.get(Destination, destination_id)
    if destination is None:
        raise NotFound(f"destination {destination_id} not found")
    return destination


async def plan_replay(
    session: AsyncSession, destination_id: int, *, start: datetime, end: datetime
) -> list[Planned]:
    """What :func:`replay` would queue: the destination's workouts started in [start, end)."""
    destination = await _destination(session, destination_id)
    bulk = BulkRepository(session)
    including = await bulk.including_external()
    plans = []
    for workout in await bulk.workouts_started(start, end):
        formats = writable_formats(destination, workout.has_gps)
        wanted = wants(
            destination,
            workout.account_id,
            workout.discipline,
            origin=workout.origin,
            include_external=workout.account_id in including,
        )
        if wanted and formats:
            plans.append(Planned(workout, formats))
    return plans


async def _queue(
    session: AsyncSession, destination: Destination, plans: list[Planned], now: datetime
) -> int:
    """Each planned workout pending again, as new messages (new message ids); missing
    deliveries are created. Returns how many deliveries are queued."""
    repo, bulk = DeliveryRepository(session), BulkRepository(session)
    queued = 0
    for plan in plans:
        await repo.create_pending(plan.workout.id, destination.id, plan.formats, now=now)
        for delivery in await bulk.idle_deliveries(plan.workout.id, destination.id, plan.formats):
            delivery.state = DeliveryState.PENDING
            delivery.budget_start = delivery.attempts
            delivery.next_attempt_at = now
            delivery.message_id = new_message_id()
            queued += 1
    await session.flush()
    return queued


async def replay(
    session: AsyncSession, destination_id: int, *, start: datetime, end: datetime, now: datetime
) -> int:
    """Send every workout started in [start, end) to the destination again, as new messages.

    Existing deliveries are reset to pending with a NEW message id (a replay is a new message
    to the receiver, unlike a retry); missing ones are created. Returns how many are queued.
    """
    plans = await plan_replay(session, destination_id, start=start, end=end)
    return await _queue(session, await _destination(session, destination_id), plans, now)


async def plan_send(
    session: AsyncSession, destination_id: int, workout_ids: list[int]
) -> tuple[list[Planned], list[tuple[int, str]]]:
    """What :func:`send_workouts` would queue, and the workouts it would skip (with why).
    Unknown ids are refused (:class:`NotFound`)."""
    destination = await _destination(session, destination_id)
    wanted = list(dict.fromkeys(workout_ids))
    if not wanted:
        raise InvalidInput("workout_ids: choose at least one workout")
    if len(wanted) > MAX_SEND:
        raise InvalidInput(f"workout_ids: at most {MAX_SEND} at once (replay a date range)")
    found = await BulkRepository(session).workouts(wanted)
    missing = sorted(set(wanted) - {w.id for w in found})
    if missing:
        raise NotFound(f"workout {', '.join(map(str, missing))} not found")
    plans, skipped = [], []
    for workout in found:
        formats = writable_formats(destination, workout.has_gps)
        if workout.conversion_error is not None:
            skipped.append((workout.id, "it could not be converted"))
        elif not formats:
            skipped.append((workout.id, "it has none of the destination's formats"))
        else:
            plans.append(Planned(workout, formats))
    return plans, skipped


async def send_workouts(
    session: AsyncSession, destination_id: int, workout_ids: list[int], now: datetime
) -> SendResult:
    """Send these workouts to the destination now, whatever its account and discipline
    filters (they were chosen by hand), as new messages. Unknown ids are refused (nothing
    queued); a workout that cannot be converted, or has none of its formats, is skipped."""
    plans, skipped = await plan_send(session, destination_id, workout_ids)
    destination = await _destination(session, destination_id)
    return SendResult(await _queue(session, destination, plans, now), skipped)


async def failed_count(session: AsyncSession, destination_id: int) -> int:
    await _destination(session, destination_id)
    return await BulkRepository(session).count_failed(destination_id)


async def retry_failed(session: AsyncSession, destination_id: int, now: datetime) -> int:
    """Every failed delivery of the destination due now with a fresh retry budget (each keeps
    its message id: to the receiver it is the same message again). Returns how many."""
    await _destination(session, destination_id)
    return await BulkRepository(session).retry_failed(destination_id, now)
