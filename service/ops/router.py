"""Liveness and readiness."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.budget.service import BudgetView
from service.migrate import current_revision, head_revision
from service.runtime import Runtime

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers, the schema is current, the scheduler is ticking.

    ``details.peloton_budget`` shows the Peloton request budget: a throttling pause is shown
    there (and in ``checks.peloton``) but does not make the replica unready: every replica
    leaving by that address is paused alike, and none of them is at fault.
    """
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, Any] = {}
    details: dict[str, Any] = {}
    ready = True
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
        current, head = await current_revision(runtime.engine), head_revision()
        checks["migrations"] = "ok" if current == head else f"at {current}, need {head}"
        ready = current == head
        if ready:
            budget = await runtime.budget.view()
            details["peloton_budget"] = budget_details(budget)
            until = budget.paused_until
            checks["peloton"] = (
                f"throttled: requests paused until {until.isoformat()}" if until else "ok"
            )
    except Exception as exc:  # any failure to reach the database means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    if request.app.state.scheduler_enabled:
        beat = runtime.heartbeat
        stale_after = timedelta(seconds=max(runtime.settings.tick_seconds * 6, 30))
        fresh = beat is not None and runtime.clock() - beat < stale_after
        checks["scheduler"] = "ok" if fresh else "no recent heartbeat"
        ready = ready and fresh
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks, "details": details},
        status_code=200 if ready else 503,
    )


def budget_details(budget: BudgetView) -> dict[str, Any]:
    """The request budget as /readyz shows it."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "egress": budget.egress,
        "max_rps": budget.rate,
        "paused_until": iso(budget.paused_until),
        "throttle_streak": budget.throttle_streak,
        "throttles": budget.throttles,
        "last_throttled_at": iso(budget.last_throttled_at),
        "last_throttle": budget.last_throttle,
        "requests": budget.requests,
        "backlog_s": round(budget.backlog_s, 3),
    }
