"""Events: what went wrong lately (an account to re-link, a destination disabled, a delivery
given up, credentials about to expire) and whether each reached the subscribed webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.deps import RuntimeDep, SessionDep
from service.events import service as events
from service.events.models import OPERATIONAL, TITLES, EventType
from service.schemas import MAX_ID
from service.web import queries
from service.web.deps import ViewerDep, WebRoute, render

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 50

#: How each event type reads on the dashboard.


@router.get("/events")
async def list_events(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    viewer: ViewerDep,
    type: EventType | None = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """Recent events, newest first, with their deliveries to webhooks."""
    rows = await events.listing(
        db, limit=PAGE_SIZE + 1, before_id=before, types=[type.value] if type else None
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render(
        request,
        runtime,
        "events.html",
        viewer,
        page="events",
        rows=rows,
        type=type.value if type else None,
        types=[(t.value, TITLES[t]) for t in OPERATIONAL],
        titles={t.value: text for t, text in TITLES.items()},
        destinations={d.id: d.name for d in await queries.destinations(db)},
        next_before=rows[-1][0].id if more else None,
    )
