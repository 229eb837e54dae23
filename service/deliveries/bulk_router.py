"""``/v1/destinations/{id}/…``: retry a destination's failed deliveries, send chosen workouts
to it, preview a replay and queue it.

These routes live with the deliveries they create, not in :mod:`service.destinations.router`,
so that the destinations domain does not depend on the deliveries domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, ConfigDict, Field

from service.auth.deps import current_key
from service.deliveries import bulk
from service.deliveries.service import replay
from service.deps import RuntimeDep, SessionDep
from service.destinations.schemas import ReplayQueued, ReplayRequest
from service.errors import InvalidInput
from service.openapi import errors
from service.schemas import MAX_ID, IdPath

router = APIRouter(
    prefix="/v1/destinations",
    tags=["destinations"],
    dependencies=[Depends(current_key)],
    responses=errors(401, 403, 422),
)

WorkoutId = Annotated[int, Field(ge=1, le=MAX_ID)]


class Queued(BaseModel):
    destination_id: int
    queued: int = Field(description="Deliveries queued (one per workout and format).")


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workout_ids: list[WorkoutId] = Field(
        min_length=1, max_length=bulk.MAX_SEND, description="The workouts to send."
    )


class Skipped(BaseModel):
    workout_id: int
    reason: str


class SendQueued(Queued):
    skipped: list[Skipped] = Field(description="Workouts not sent, and why.")


class PlannedWorkout(BaseModel):
    id: int
    account_id: int
    title: str
    discipline: str
    started_at: datetime
    formats: list[str] = Field(description="The files that would be sent.")


class ReplayPreview(BaseModel):
    destination_id: int
    deliveries: int = Field(description="Deliveries a replay would queue.")
    workouts: list[PlannedWorkout] = Field(description="What it would send, oldest first.")


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput(f"{name}: give a time zone (e.g. 2026-01-01T00:00:00Z)")
    return value


@router.get("/{destination_id}/replay-preview", responses=errors(404))
async def preview_replay(
    destination_id: IdPath,
    session: SessionDep,
    start: Annotated[datetime, Query(description="Workouts started at or after this time...")],
    end: Annotated[datetime, Query(description="...and before this one.")],
) -> ReplayPreview:
    """What `POST …/replay` with the same range would queue, without queueing anything."""
    start, end = _aware("start", start), _aware("end", end)
    if end <= start:
        raise InvalidInput("end: must be after start")
    plans = await bulk.plan_replay(session, destination_id, start=start, end=end)
    return ReplayPreview(
        destination_id=destination_id,
        deliveries=sum(len(p.formats) for p in plans),
        workouts=[
            PlannedWorkout(
                id=p.workout.id,
                account_id=p.workout.account_id,
                title=p.workout.title,
                discipline=p.workout.discipline,
                started_at=p.workout.started_at,
                formats=p.formats,
            )
            for p in plans
        ],
    )


@router.post(
    "/{destination_id}/retry-failed", status_code=status.HTTP_202_ACCEPTED, responses=errors(404)
)
async def retry_failed(destination_id: IdPath, runtime: RuntimeDep, session: SessionDep) -> Queued:
    """Send every failed delivery of this destination again now, with a fresh retry budget
    (each keeps its message id: receivers see the same message again)."""
    queued = await bulk.retry_failed(session, destination_id, runtime.clock())
    return Queued(destination_id=destination_id, queued=queued)


@router.post("/{destination_id}/send", status_code=status.HTTP_202_ACCEPTED, responses=errors(404))
async def send_workouts(
    destination_id: IdPath, body: SendRequest, runtime: RuntimeDep, session: SessionDep
) -> SendQueued:
    """Send these workouts to this destination now, as new messages, whatever its account
    and discipline filters. 404 (nothing queued) if a workout does not exist; one that cannot
    be converted, or has none of the destination's formats, is listed in `skipped`."""
    result = await bulk.send_workouts(session, destination_id, body.workout_ids, runtime.clock())
    return SendQueued(
        destination_id=destination_id,
        queued=result.queued,
        skipped=[Skipped(workout_id=w, reason=r) for w, r in result.skipped],
    )


@router.post(
    "/{destination_id}/replay", status_code=status.HTTP_202_ACCEPTED, responses=errors(404)
)
async def replay_destination(
    destination_id: IdPath, body: ReplayRequest, runtime: RuntimeDep, session: SessionDep
) -> ReplayQueued:
    """Send every workout started in [start, end) to this destination again, as new messages
    (new message ids: receivers that dedupe see them as new)."""
    if body.end <= body.start:
        raise InvalidInput("end: must be after start")
    queued = await replay(
        session, destination_id, start=body.start, end=body.end, now=runtime.clock()
    )
    return ReplayQueued(destination_id=destination_id, queued=queued)
