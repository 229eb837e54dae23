"""The ``api.onepeloton.com`` side: the user, settings, workouts, graphs and class details.

Every route needs ``Authorization: Bearer <access token>`` (401 otherwise, also for an expired
token) and a user only sees their own data: another user's settings or workout list is 403,
another user's workout is 404, as if it did not exist.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from service.peloton.sandbox.documents import (
    me_json,
    ride_details_json,
    settings_json,
    workout_json,
)
from service.peloton.sandbox.generator import MAX_EVERY_N
from service.peloton.sandbox.specs import WorkoutSpec
from service.peloton.sandbox.state import Account
from service.peloton.sandbox.web import ApiError, StateDep, forbidden, json_bytes, login_required

router = APIRouter(prefix="/api", tags=["api"])

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
#: performance_graph without every_n (pylotoncycle may omit it).
DEFAULT_EVERY_N = 5


async def current_account(request: Request, state: StateDep) -> Account:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise login_required()
    user_id, expired = state.tokens.user_for(token.strip())
    if user_id is None or user_id not in state.accounts:
        raise login_required()
    if expired:
        raise login_required("Login required: the access token has expired")
    return state.accounts[user_id]


AccountDep = Annotated[Account, Depends(current_account)]


def _int_param(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid value for '{name}': {raw!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        bounds = f"from {low}" + (f" to {high}" if high is not None else "")
        raise ApiError(400, f"Invalid value for '{name}': must be {bounds}")
    return value


def _joins(request: Request) -> set[str]:
    return {j.strip() for j in request.query_params.get("joins", "").split(",") if j.strip()}


def _own(account: Account, user_id: str) -> None:
    if user_id != account.user.user_id:
        raise forbidden()


def _time_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise ApiError(
            400, f"Invalid value for '{name}': {raw!r} is not an ISO-8601 time"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@router.get("/me")
async def me(account: AccountDep, state: StateDep) -> Response:
    return JSONResponse(me_json(account.user, state.workouts(account)))


@router.get("/user/{user_id}/settings")
async def user_settings(user_id: str, account: AccountDep) -> Response:
    _own(account, user_id)
    return JSONResponse(settings_json(account.user))


@router.get("/user/{user_id}/workouts")
async def workouts(
    user_id: str, request: Request, account: AccountDep, state: StateDep
) -> Response:
    """A page of workouts: ``limit`` (capped at 100), 0-based ``page``, ``sort_by``,
    ``joins``, optional ``from``/``to`` (ISO-8601, on created_at)."""
    _own(account, user_id)
    limit = min(_int_param(request, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    page = _int_param(request, "page", 0, 0)
    sort_by = request.query_params.get("sort_by", "-created")
    if sort_by not in ("-created", "created", "-created_at", "created_at"):
        raise ApiError(400, f"Invalid value for 'sort_by': {sort_by!r}")
    items: list[WorkoutSpec] = list(state.workouts(account))
    if not sort_by.startswith("-"):
        items.reverse()
    since, until = _time_param(request, "from"), _time_param(request, "to")
    if since is not None or until is not None:
        items = [
            w
            for w in items
            if (since is None or w.created_at >= since) and (until is None or w.created_at < until)
        ]
    total = len(items)
    chunk = items[page * limit : (page + 1) * limit]
    joins = _joins(request)
    show_next = (page + 1) * limit < total
    months = Counter(datetime.fromtimestamp(w.created_at, tz=UTC).strftime("%Y-%m") for w in items)
    body = {
        "data": [
            workout_json(
                w,
                with_ride="ride" in joins,
                with_instructor="ride.instructor" in joins,
                listed=True,
            )
            for w in chunk
        ],
        "limit": limit,
        "page": page,
        "total": total,
        "count": len(chunk),
        "page_count": math.ceil(total / limit),
        "show_previous": page > 0,
        "show_next": show_next,
        "sort_by": "-created_at,-pk" if sort_by.startswith("-") else "created_at,pk",
        "next": (
            {"workout_id": chunk[-1].workout_id, "created_at": chunk[-1].created_at}
            if show_next and chunk
            else None
        ),
        "summary": dict(months),
        "aggregate_stats": [],
        "total_heart_rate_zone_durations": None,
    }
    return JSONResponse(body)


def _workout(state: StateDep, account: Account, workout_id: str) -> WorkoutSpec:
    spec = state.workout(account, workout_id)
    if spec is None:
        raise ApiError(404, "Workout does not exist", 10000)
    return spec


@router.get("/workout/{workout_id}")
async def workout(
    workout_id: str, request: Request, account: AccountDep, state: StateDep
) -> Response:
    spec = _workout(state, account, workout_id)
    joins = _joins(request)
    body = workout_json(spec, with_ride="ride" in joins, with_instructor="ride.instructor" in joins)
    return JSONResponse(body)


@router.get("/workout/{workout_id}/performance_graph")
async def performance_graph(
    workout_id: str, request: Request, account: AccountDep, state: StateDep
) -> Response:
    """Samples every ``every_n`` seconds (default 5); figures describe the whole workout."""
    spec = _workout(state, account, workout_id)
    every_n = _int_param(request, "every_n", DEFAULT_EVERY_N, 1, MAX_EVERY_N)
    return json_bytes(state.graph_body(spec, every_n))


@router.get("/ride/{ride_id}/details")
async def ride_details(ride_id: str, _: AccountDep, state: StateDep) -> Response:
    ride = state.rides.get(ride_id)
    if ride is None:
        raise ApiError(404, "Ride does not exist", 10000)
    return JSONResponse(ride_details_json(ride))
