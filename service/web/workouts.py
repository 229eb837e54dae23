"""Workout pages: recent workouts across accounts, and one workout with its charts."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.deps import RuntimeDep, SessionDep
from service.errors import ConversionError, NotFound
from service.files.signing import signed_path
from service.pagination import decode_time_cursor, encode_cursor
from service.schemas import CursorQuery, IdPath, IdQuery
from service.web import queries
from service.web.deps import ViewerDep, WebRoute, render
from service.web.sets import SetRow, charts_and_sets
from service.workouts import service as workouts
from service.workouts.repository import WorkoutRepository
from service.workouts.schemas import WorkoutStatus

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 50
Discipline = Annotated[str | None, Query(pattern=r"^[a-z_]{0,40}$")]


@router.get("/workouts")
async def list_workouts(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    viewer: ViewerDep,
    account_id: IdQuery = None,
    discipline: Discipline = None,
    status: WorkoutStatus | None = None,
    cursor: CursorQuery = None,
) -> Response:
    """Newest first, filtered by account, discipline and delivery status; 50 a page."""
    rows = await workouts.page(
        db,
        limit=PAGE_SIZE,
        before=decode_time_cursor(cursor),
        account_id=account_id,
        discipline=discipline or None,
        started_from=None,
        started_before=None,
        status=status.value if status else None,
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    states = await WorkoutRepository(db).delivery_states([r.id for r in rows])
    next_cursor = encode_cursor(rows[-1].started_at, rows[-1].id) if more else None
    filters = {
        "account_id": account_id,
        "discipline": discipline or "",
        "status": status.value if status else "",
    }
    older_url = None
    if next_cursor is not None:
        query = {k: v for k, v in filters.items() if v} | {"cursor": next_cursor}
        older_url = "/workouts?" + urllib.parse.urlencode(query)
    return render(
        request,
        runtime,
        "workouts.html",
        viewer,
        page="workouts",
        workouts=rows,
        states=states,
        accounts=await queries.account_labels(db),
        disciplines=await queries.disciplines(db),
        statuses=[s.value for s in WorkoutStatus],
        filters=filters,
        older_url=older_url,
        destinations=await queries.destinations(db),
    )


@router.get("/workouts/{workout_id}")
async def show_workout(
    workout_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    """Summary, charts over time with laps, route, downloads, deliveries and their attempts."""
    workout = await WorkoutRepository(db).get(workout_id)
    if workout is None:
        raise NotFound(f"workout {workout_id} not found")
    summary, _ = await workouts.get(db, workout_id)
    charts, chart_error = None, workout.conversion_error
    sets: list[SetRow] = []
    if chart_error is None:
        try:
            # Parsing a bundle is CPU work (tens of ms for an hour): not on the event loop.
            charts, sets = await asyncio.to_thread(charts_and_sets, workout.bundle())
        except ConversionError as exc:
            chart_error = exc.message
    downloads = [
        (fmt, signed_path(runtime, workout_id, fmt)[0])
        for fmt in workouts.formats_of(workout.has_gps)
    ]
    labels = await queries.account_labels(db)
    return render(
        request,
        runtime,
        "workout.html",
        viewer,
        page="workouts",
        workout=summary,
        account_label=labels.get(workout.account_id, str(workout.account_id)),
        charts=charts,
        sets=sets,
        chart_error=chart_error,
        downloads=downloads,
        deliveries=await queries.workout_delivery_rows(db, workout_id),
        destinations=await queries.destinations(db),
    )
