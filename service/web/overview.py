"""The overview: every account's sync state and every destination's health at a glance."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.accounts.repository import AccountRepository
from service.deps import RuntimeDep, SessionDep
from service.events import service as events
from service.events.models import TITLES as EVENT_TITLES
from service.web import queries
from service.web.deps import ViewerDep, WebRoute, render
from service.web.destinations import kind_labels

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/")
async def overview(
    request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    repo = AccountRepository(db)
    accounts = await repo.all()
    now = runtime.clock()
    # Unresolved events: what stopped and still needs the user (see /events).
    problem_count, problems = await events.open_problems(db)
    return render(
        request,
        runtime,
        "overview.html",
        viewer,
        page="overview",
        accounts=accounts,
        workouts=await repo.workout_counts([a.id for a in accounts]),
        # A held lease means a poll is running (here or on another replica).
        syncing={
            a.id
            for a in accounts
            if a.lease_owner is not None and a.lease_expires_at and a.lease_expires_at > now
        },
        destinations=await queries.destinations(db),
        counts=await queries.delivery_counts(db),
        totals=await queries.state_totals(db),
        kinds=kind_labels(),
        budget=await runtime.budget.view(),
        problems=problems,
        problem_count=problem_count,
        titles={t.value: text for t, text in EVENT_TITLES.items()},
    )
