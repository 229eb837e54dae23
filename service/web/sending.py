"""A destination's deliveries by the handful: what it received, retrying every failed one,
sending chosen workouts to it, and seeing what a replay will queue before it queues.

Each change has its confirmation page (GET: what will happen) and its POST; read-only keys
see the lists and previews but never a button, and get the 403 page on the changes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.deliveries import bulk
from service.deliveries.models import DeliveryState
from service.deps import RuntimeDep, SessionDep
from service.destinations import service as destinations
from service.errors import InvalidInput, PelosyncError
from service.schemas import MAX_ID, IdPath, IdQuery
from service.web import forms, queries
from service.web.confirm import Confirmation, confirm_page, plural, require_admin
from service.web.deps import ActionDep, Form, ViewerDep, WebRoute, redirect, render

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 50
SHOWN = 200  # planned workouts listed on a confirmation page; the count is always exact
DayQuery = Annotated[str, Query(max_length=10)]
WorkoutIds = Annotated[list[int], Query(max_length=bulk.MAX_SEND)]


@router.get("/destinations/{destination_id}/delivered")
async def delivered(
    destination_id: IdPath,
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    viewer: ViewerDep,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """The files the destination received, newest first, 50 a page."""
    destination = await destinations.get(db, destination_id)
    rows = await queries.delivery_rows(
        db,
        state=DeliveryState.SUCCEEDED,
        limit=PAGE_SIZE + 1,
        before_id=before,
        destination_id=destination_id,
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    counts = (await queries.delivery_counts(db)).get(destination_id, {})
    return render(
        request,
        runtime,
        "delivered.html",
        viewer,
        page="destinations",
        destination=destination,
        rows=rows,
        total=counts.get(DeliveryState.SUCCEEDED, 0),
        next_before=rows[-1].delivery.id if more else None,
        first_page=before is None,
    )


@router.get("/destinations/{destination_id}/retry-failed")
async def confirm_retry_failed(
    destination_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    require_admin(viewer, "retry deliveries")
    destination = await destinations.get(db, destination_id)
    failed = await bulk.failed_count(db, destination_id)
    lines = [
        f"{plural(failed, 'failed delivery')} to {destination.name} will be sent again now, "
        "each with a fresh retry budget and keeping its message id (receivers see the same "
        "message again)."
        if failed
        else f"{destination.name} has no failed delivery: nothing to retry."
    ]
    if failed and not destination.enabled:
        lines.append("It is paused: they wait until it is resumed.")
    return confirm_page(
        request,
        runtime,
        viewer,
        "destinations",
        Confirmation(
            title=f"Retry the failed deliveries to {destination.name}?",
            back=f"/destinations/{destination_id}",
            back_text=destination.name,
            lines=lines,
            action=f"/destinations/{destination_id}/retry-failed" if failed else None,
            button=f"Retry {plural(failed, 'delivery')}",
        ),
    )


@router.post("/destinations/{destination_id}/retry-failed")
async def retry_failed(
    destination_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    queued = await bulk.retry_failed(db, destination_id, runtime.clock())
    return redirect(
        request,
        runtime,
        f"/destinations/{destination_id}",
        ok=f"{plural(queued, 'failed delivery')} will be sent again now.",
    )


def _planned_rows(plans: list[bulk.Planned]) -> list[bulk.Planned]:
    return plans[:SHOWN]


@router.get("/send")
async def confirm_send(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    viewer: ViewerDep,
    workout_ids: WorkoutIds = [],  # noqa: B006 (FastAPI copies defaults)
    destination_id: IdQuery = None,
) -> Response:
    """The chosen workouts, a destination to choose, then what will be sent to it."""
    require_admin(viewer, "send workouts")
    ids = [i for i in workout_ids if 1 <= i <= MAX_ID]
    if not ids:  # "Send…" with no box ticked
        return redirect(request, runtime, "/workouts", error="Tick the workouts to send first.")
    all_destinations = await queries.destinations(db)
    if not all_destinations:
        raise InvalidInput("there is no destination to send to yet: add one first")
    chosen = destination_id or all_destinations[0].id
    destination = await destinations.get(db, chosen)
    plans, skipped = await bulk.plan_send(db, chosen, ids)
    back = f"/workouts/{ids[0]}" if len(ids) == 1 else "/workouts"
    lines = [
        f"{plural(len(plans), 'workout')} will be sent to {destination.name} now "
        f"({plural(sum(len(p.formats) for p in plans), 'file')}), as new messages, whatever "
        "its account and discipline filters."
        if plans
        else f"None of these workouts can be sent to {destination.name}."
    ]
    if plans and not destination.enabled:
        lines.append("It is paused: they wait until it is resumed.")
    return confirm_page(
        request,
        runtime,
        viewer,
        "workouts",
        Confirmation(
            title="Send workouts" if len(ids) > 1 else "Send a workout",
            back=back,
            back_text="Workouts" if len(ids) > 1 else "The workout",
            lines=lines,
            action="/send" if plans else None,
            fields={"destination_id": chosen, "workout_ids": [p.workout.id for p in plans]},
            button=f"Send {plural(len(plans), 'workout')}",
        ),
        template="send.html",
        destinations=all_destinations,
        destination=destination,
        ids=ids,
        plans=_planned_rows(plans),
        planned=len(plans),
        skipped=skipped,
        accounts=await queries.account_labels(db),
    )


def _ids(form: Form) -> list[int]:
    ids = []
    for text in form.getlist("workout_ids"):
        try:
            ids.append(int(text))
        except ValueError:
            raise InvalidInput("workouts: not a workout id") from None
    return ids


@router.post("/send")
async def send_workouts(
    request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """Queue the confirmed workouts; back to the destination (its counts) with what was done."""
    destination_id = forms.identifier(action.form, "destination_id", "destination")
    await destinations.get(db, destination_id)  # gone since the confirmation: the 404 page
    back = f"/destinations/{destination_id}"
    try:
        result = await bulk.send_workouts(db, destination_id, _ids(action.form), runtime.clock())
    except PelosyncError as exc:  # a workout deleted meanwhile, none chosen...
        await db.rollback()
        return redirect(request, runtime, "/workouts", error=f"Send: {exc.message}")
    message = f"Queued {plural(result.queued, 'delivery')}."
    if result.skipped:
        message += f" Skipped {plural(len(result.skipped), 'workout')}."
    return redirect(request, runtime, back, ok=message)


@router.get("/destinations/{destination_id}/replay")
async def preview_replay(
    destination_id: IdPath,
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    viewer: ViewerDep,
    start: DayQuery = "",
    end: DayQuery = "",
) -> Response:
    """What a replay of these days will queue (count and list), then the replay itself."""
    destination = await destinations.get(db, destination_id)
    if not start and not end:
        # Reached without its form's days (a bookmark, a shared link): the form is on the
        # destination's page.
        return redirect(request, runtime, f"/destinations/{destination_id}#replay")
    first, after = forms.date_range(Form({"start": [start], "end": [end]}))
    plans = await bulk.plan_replay(db, destination_id, start=first, end=after)
    files = sum(len(p.formats) for p in plans)
    last = after - timedelta(days=1)
    days = f"{first:%d %b %Y}" if first == last else f"{first:%d %b %Y} to {last:%d %b %Y}"
    lines = [
        f"{plural(len(plans), 'workout')} started {days} (UTC) will be sent to "
        f"{destination.name} again ({plural(files, 'file')}), as new messages: receivers that "
        "dedupe see them as new."
        if plans
        else f"No workout started {days} (UTC) goes to {destination.name}: nothing to replay."
    ]
    return confirm_page(
        request,
        runtime,
        viewer,
        "destinations",
        Confirmation(
            title=f"Replay to {destination.name}?",
            back=f"/destinations/{destination_id}",
            back_text=destination.name,
            lines=lines,
            action="/deliveries/replay" if plans else None,
            fields={
                "destination_id": destination_id,
                "start": start,
                "end": end,
                "next": f"/destinations/{destination_id}",
            },
            button=f"Replay {plural(len(plans), 'workout')}",
        ),
        template="send.html",
        destinations=[],
        destination=destination,
        ids=[],
        plans=_planned_rows(plans),
        planned=len(plans),
        skipped=[],
        accounts=await queries.account_labels(db),
    )
