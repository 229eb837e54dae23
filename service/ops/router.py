"""Liveness and readiness."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.migrate import current_revision, head_revision
from service.runtime import Runtime

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers, the schema is current, the scheduler is ticking."""
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, Any] = {}
    ready = True
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
        current, head = await current_revision(runtime.engine), head_revision()
        checks["migrations"] = "ok" if current == head else f"at {current}, need {head}"
        ready = current == head
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
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
