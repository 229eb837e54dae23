"""The admin API under ``/_sandbox/`` (JSON): users and their tokens, workouts, latency,
fault injection, the clock, the request log and counters, reset. No authentication: the
sandbox is a development and test tool."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from service.errors import NotFound
from service.peloton.sandbox.catalog import KINDS, MAX_DURATION_S, Units
from service.peloton.sandbox.faults import FaultKind
from service.peloton.sandbox.specs import WorkoutSpec
from service.peloton.sandbox.state import MAX_WORKOUTS, PasswordGrant
from service.peloton.sandbox.web import StateDep

router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewUser(_Body):
    username: str | None = Field(default=None, min_length=1, max_length=64)
    password: str | None = Field(default=None, min_length=1, max_length=128)
    units: Units | None = None
    timezone: str | None = None
    workouts: int | None = Field(default=None, ge=0, le=MAX_WORKOUTS)
    in_progress: bool = False


class NewWorkouts(_Body):
    kind: str | None = Field(default=None, description=f"One of: {', '.join(KINDS)}")
    count: int = Field(default=1, ge=1, le=1000)
    in_progress: bool = False
    elapsed: int | None = Field(default=None, ge=0, description="Seconds done so far.")
    duration: int | None = Field(default=None, ge=1, le=MAX_DURATION_S)
    heart_rate: bool | None = None
    complete_after_s: float | None = Field(default=None, ge=0)


class NewTokens(_Body):
    client_id: str | None = None
    scope: str = "offline_access openid peloton-api.members:default"


class NewFault(_Body):
    kind: FaultKind
    count: int | None = Field(default=None, ge=1, description="Fire for the next N requests.")
    fraction: float | None = Field(default=None, gt=0, le=1, description="Or for this share.")
    path_prefix: str | None = None
    status: Literal[500, 502, 503] = 503
    retry_after: int = Field(default=60, ge=0)
    delay_s: float = Field(default=35.0, ge=0, le=3600)


class Latency(_Body):
    ms: float = Field(ge=0, le=600_000)


class Clock(_Body):
    advance_s: float = Field(ge=0)


class Reset(_Body):
    data: bool = False


class PasswordGrantSwitch(_Body):
    mode: PasswordGrant = Field(
        description="allowed; or refused as unauthorized_client, or as invalid_grant naming "
        "the grant type (Auth0's two ways of turning the password grant off)"
    )


def _workout_row(spec: WorkoutSpec) -> dict[str, Any]:
    return {
        "id": spec.workout_id,
        "kind": spec.kind,
        "status": "IN_PROGRESS" if spec.in_progress else "COMPLETE",
        "created_at": spec.created_at,
        "duration": spec.duration,
        "title": spec.ride.title,
    }


@router.get("/")
async def overview(request: Request, state: StateDep) -> dict[str, Any]:
    return {
        "base_url": str(request.base_url).rstrip("/"),
        "seed": state.config.seed,
        "users": len(state.accounts),
        "kinds": list(KINDS),
        "latency_ms": state.latency_ms,
        "faults": [f.to_json() for f in state.faults.rules],
        "now": state.now(),
    }


@router.get("/users")
async def list_users(state: StateDep) -> list[dict[str, Any]]:
    """Every user with password and current tokens (to link an account by refresh token)."""
    return [state.describe_user(a) for a in state.accounts.values()]


@router.post("/users", status_code=201)
async def create_user(body: NewUser, state: StateDep) -> dict[str, Any]:
    account = state.add_user(
        username=body.username,
        password=body.password,
        units=body.units,
        timezone=body.timezone,
        workouts=body.workouts,
        in_progress_last=body.in_progress,
    )
    return state.describe_user(account)


@router.get("/users/{user_id}")
async def get_user(user_id: str, state: StateDep) -> dict[str, Any]:
    return state.describe_user(state.account(user_id))


@router.post("/users/{user_id}/tokens", status_code=201)
async def issue_tokens(
    user_id: str, body: NewTokens, request: Request, state: StateDep
) -> dict[str, Any]:
    """A fresh token answer for the user, as if they had just logged in."""
    account = state.account(user_id)
    client_id = body.client_id or state.config.web_client_id
    return state.tokens.issue(
        account.user.user_id, client_id, body.scope, issuer=str(request.base_url)
    )


@router.post("/users/{user_id}/revoke")
async def revoke(user_id: str, state: StateDep) -> dict[str, int]:
    """Drop all the user's tokens: refreshing then fails with ``invalid_grant``."""
    return {"revoked": state.tokens.revoke_user(state.account(user_id).user.user_id)}


@router.get("/users/{user_id}/workouts")
async def list_workouts(user_id: str, state: StateDep) -> list[dict[str, Any]]:
    return [_workout_row(w) for w in state.workouts(state.account(user_id))]


@router.post("/users/{user_id}/workouts", status_code=201)
async def add_workouts(user_id: str, body: NewWorkouts, state: StateDep) -> dict[str, Any]:
    """Workouts created now (newest first in the user's list)."""
    added = state.add_workouts(
        state.account(user_id),
        kind=body.kind,
        count=body.count,
        in_progress=body.in_progress,
        elapsed=body.elapsed,
        duration=body.duration,
        heart_rate=body.heart_rate,
        complete_after_s=body.complete_after_s,
    )
    return {"workouts": [_workout_row(w) for w in added]}


@router.post("/workouts/{workout_id}/complete")
async def complete(workout_id: str, state: StateDep) -> dict[str, Any]:
    return _workout_row(state.complete(workout_id))


@router.get("/latency")
async def get_latency(state: StateDep) -> dict[str, float]:
    return {"ms": state.latency_ms}


@router.put("/latency")
async def set_latency(body: Latency, state: StateDep) -> dict[str, float]:
    state.latency_ms = body.ms
    return {"ms": state.latency_ms}


@router.get("/faults")
async def list_faults(state: StateDep) -> list[dict[str, Any]]:
    return [f.to_json() for f in state.faults.rules]


@router.post("/faults", status_code=201)
async def add_fault(body: NewFault, state: StateDep) -> dict[str, Any]:
    """Arm a fault for the next ``count`` requests (default 1) or a ``fraction`` of them."""
    fault = state.faults.add(
        body.kind,
        count=body.count,
        fraction=body.fraction,
        path_prefix=body.path_prefix,
        status=body.status,
        retry_after=body.retry_after,
        delay_s=body.delay_s,
    )
    return fault.to_json()


@router.delete("/faults")
async def clear_faults(state: StateDep) -> dict[str, int]:
    count = len(state.faults.rules)
    state.faults.clear()
    return {"removed": count}


@router.delete("/faults/{fault_id}")
async def remove_fault(fault_id: int, state: StateDep) -> dict[str, int]:
    if not state.faults.remove(fault_id):
        raise NotFound(f"no fault {fault_id}")
    return {"removed": 1}


@router.post("/tokens/expire")
async def expire_tokens(state: StateDep) -> dict[str, int]:
    """Expire every access token now (refresh tokens keep working)."""
    return {"expired": state.tokens.expire_all()}


@router.get("/password-grant")
async def get_password_grant(state: StateDep) -> dict[str, str]:
    return {"mode": state.runtime.password_grant}


@router.put("/password-grant")
async def set_password_grant(body: PasswordGrantSwitch, state: StateDep) -> dict[str, str]:
    """Allow or refuse ``grant_type=password`` (a reset allows it again)."""
    state.runtime.password_grant = body.mode
    return {"mode": state.runtime.password_grant}


@router.post("/clock")
async def advance_clock(body: Clock, state: StateDep) -> dict[str, float]:
    """Move sandbox time forward (token expiry, auto-completing workouts)."""
    return {"now": state.advance(body.advance_s)}


@router.get("/requests")
async def requests_log(state: StateDep, limit: int = 100) -> list[dict[str, Any]]:
    """The last ``limit`` requests, oldest first."""
    entries = list(state.log.entries)
    return entries[-limit:] if limit > 0 else []


@router.get("/counters")
async def counters(state: StateDep) -> dict[str, Any]:
    return state.log.counters()


@router.post("/reset")
async def reset(state: StateDep, body: Reset | None = None) -> dict[str, bool]:
    """Clear faults, latency, log and clock; ``{"data": true}`` also rebuilds users and tokens."""
    state.reset(data=bool(body and body.data))
    return {"reset": True, "data": bool(body and body.data)}
