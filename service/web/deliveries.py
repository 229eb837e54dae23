"""Deliveries: the failed and pending ones, retrying one, replaying a destination."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.deliveries.service import replay, retry_delivery
from service.deps import RuntimeDep, SessionDep
from service.errors import PelosyncError
from service.schemas import MAX_ID, IdPath
from service.web import forms, queries
from service.web.deps import ActionDep, ViewerDep, WebRoute, redirect, render, safe_next

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 50


@router.get("/deliveries")
async def list_deliveries(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    viewer: ViewerDep,
    state: Literal["failed", "pending"] = "failed",
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """Failed (default) or pending deliveries, newest first, with their last error."""
    rows = await queries.delivery_rows(db, state=state, limit=PAGE_SIZE + 1, before_id=before)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render(
        request,
        runtime,
        "deliveries.html",
        viewer,
        page="deliveries",
        state=state,
        rows=rows,
        totals=await queries.state_totals(db),
        destinations=await queries.destinations(db),
        next_before=rows[-1].delivery.id if more else None,
    )


@router.post("/deliveries/{delivery_id}/retry")
async def retry(
    delivery_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """Due now with a fresh retry budget (the same message id: the same message, again)."""
    back = safe_next(action.form.get("next"), "/deliveries")
    try:
        await retry_delivery(db, delivery_id, runtime.clock())
    except PelosyncError as exc:
        await db.rollback()
        return redirect(request, runtime, back, error=exc.message)
    return redirect(request, runtime, back, ok=f"Delivery {delivery_id} will be sent again now.")


@router.post("/deliveries/replay")
async def replay_destination(
    request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """Send every workout started on the days given to a destination again (new messages)."""
    back = safe_next(action.form.get("next"), "/deliveries")
    try:
        destination_id = forms.identifier(action.form, "destination_id", "destination")
        start, end = forms.date_range(action.form)
        queued = await replay(db, destination_id, start=start, end=end, now=runtime.clock())
    except PelosyncError as exc:
        await db.rollback()
        return redirect(request, runtime, back, error=f"Replay: {exc.message}")
    return redirect(request, runtime, back, ok=f"Replay queued {queued} deliveries.")
