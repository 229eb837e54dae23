"""``/v1/destinations``: where workouts go, and ``/v1/strava/callback``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from service.auth.deps import AdminOnly, Authorized, current_key
from service.auth.models import Role
from service.deps import RuntimeDep, SessionDep
from service.destinations import service
from service.destinations.kinds.base import excerpt
from service.destinations.models import Destination
from service.destinations.schemas import (
    DestinationCreate,
    DestinationOut,
    DestinationUpdate,
    DestinationWithSecret,
    RotateSecret,
    StravaConnected,
    TestResult,
)
from service.openapi import errors
from service.pagination import decode_id_cursor, encode_cursor, page_of
from service.runtime import Runtime
from service.schemas import CursorQuery, IdPath, Limit, Page

router = APIRouter(
    prefix="/v1/destinations",
    tags=["destinations"],
    dependencies=[Depends(current_key)],
    responses=errors(401, 403, 422),
)
# Strava's redirect carries no API key: the signed, single-use, expiring ``state`` (started by
# an admin key) is the credential.
callback_router = APIRouter(prefix="/v1/strava", tags=["destinations"], responses=errors(404, 422))

STRAVA_CALLBACK_PATH = "/v1/strava/callback"


def destination_out(
    runtime: Runtime, destination: Destination, *, admin: bool = True
) -> DestinationOut:
    """The API's view of a destination; a read-only caller sees no character of a secret."""
    return DestinationOut(
        id=destination.id,
        name=destination.name,
        kind=destination.kind,
        config=destination.config,
        secrets=service.masked_secrets(runtime, destination, show_tail=admin),
        formats=destination.formats,
        account_ids=destination.account_ids,
        disciplines=destination.disciplines,
        enabled=destination.enabled,
        disabled_reason=destination.disabled_reason,
        concurrency=destination.concurrency,
        last_success_at=destination.last_success_at,
        failing_since=destination.failing_since,
        postponed_until=destination.postponed_until,
        created_at=destination.created_at,
        updated_at=destination.updated_at,
    )


def _with_secret(
    runtime: Runtime, destination: Destination, generated: str | None
) -> DestinationWithSecret:
    out = destination_out(runtime, destination)
    return DestinationWithSecret(**out.model_dump(), generated_secret=generated)


@router.get("")
async def list_destinations(
    runtime: RuntimeDep,
    session: SessionDep,
    caller: Authorized,
    limit: Limit = 50,
    cursor: CursorQuery = None,
) -> Page[DestinationOut]:
    """List destinations in the order they were created (secrets masked)."""
    rows = await service.page(session, after_id=decode_id_cursor(cursor), limit=limit)
    admin = caller.role == Role.ADMIN
    items = [destination_out(runtime, d, admin=admin) for d in rows]
    return page_of(items, limit, lambda d: encode_cursor(None, d.id))


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_destination(
    body: DestinationCreate, runtime: RuntimeDep, session: SessionDep
) -> DestinationWithSecret:
    """Add a destination of any kind: webhook, directory, strava, intervals, runalyze, garmin.

    Workouts synced from now on are delivered to it (replay sends older ones). A webhook
    created without a `secret` gets one generated, returned once in `generated_secret`. A
    Strava destination starts without tokens: connect it with `GET …/strava/connect`.
    """
    values = body.model_dump(exclude_unset=True)
    values["name"] = body.name
    destination, generated = await service.create(runtime, session, values)
    return _with_secret(runtime, destination, generated)


@router.get("/{destination_id}", responses=errors(404))
async def get_destination(
    destination_id: IdPath, runtime: RuntimeDep, session: SessionDep, caller: Authorized
) -> DestinationOut:
    """One destination (secrets masked), with why it was disabled, if it was."""
    destination = await service.get(session, destination_id)
    return destination_out(runtime, destination, admin=caller.role == Role.ADMIN)


@router.patch("/{destination_id}", responses=errors(404))
async def update_destination(
    destination_id: IdPath, body: DestinationUpdate, runtime: RuntimeDep, session: SessionDep
) -> DestinationOut:
    """Change a destination. `config` and `secrets` merge key by key; null removes a key."""
    changes = body.model_dump(exclude_unset=True)
    destination = await service.update(runtime, session, destination_id, changes)
    return destination_out(runtime, destination)


@router.delete("/{destination_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
async def delete_destination(
    destination_id: IdPath, runtime: RuntimeDep, session: SessionDep, background: BackgroundTasks
) -> Response:
    """Delete a destination with its deliveries and their attempts (not the workouts, nor
    what it already received).

    A connected Strava destination's access is then revoked on Strava, once the deletion is
    committed; if Strava cannot be reached the deletion stands and the log says so."""
    revocation = await service.delete(runtime, session, destination_id)
    if revocation is not None:
        # Runs after the commit and the response: the deletion never waits for Strava.
        background.add_task(service.revoke, runtime, revocation)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{destination_id}/test", responses=errors(404))
async def test_destination(
    destination_id: IdPath, runtime: RuntimeDep, session: SessionDep
) -> TestResult:
    """Send a test event now (a signed webhook `ping`, an authorization check for services).

    A destination that does not work answers `ok: false` with the reason (not an error).
    """
    result, error = await service.test(runtime, session, destination_id)
    if error is not None:
        return TestResult(
            ok=False,
            status_code=error.remote_status,
            error=error.message,
            response_excerpt=excerpt(error.response_excerpt),
        )
    assert result is not None
    return TestResult(
        ok=True,
        status_code=result.status_code,
        error=None,
        response_excerpt=excerpt(result.response_excerpt),
    )


@router.post("/{destination_id}/enable", responses=errors(404))
async def enable_destination(
    destination_id: IdPath, runtime: RuntimeDep, session: SessionDep
) -> DestinationOut:
    """Enable (again): its pending deliveries resume, its failure streak starts over."""
    return destination_out(
        runtime, await service.set_enabled(runtime, session, destination_id, True)
    )


@router.post("/{destination_id}/disable", responses=errors(404))
async def disable_destination(
    destination_id: IdPath, runtime: RuntimeDep, session: SessionDep
) -> DestinationOut:
    """Disable: nothing is sent; deliveries wait (new workouts still queue for it)."""
    return destination_out(
        runtime, await service.set_enabled(runtime, session, destination_id, False)
    )


@router.post("/{destination_id}/rotate-secret", responses=errors(404))
async def rotate_destination_secret(
    destination_id: IdPath,
    runtime: RuntimeDep,
    session: SessionDep,
    body: RotateSecret | None = None,
) -> DestinationWithSecret:
    """Give a webhook a new signing secret (given, or generated and returned once).

    For 24 hours both secrets sign every request, so receivers can switch without a gap.
    """
    secret = body.secret if body is not None else None
    destination, generated = await service.rotate_secret(runtime, session, destination_id, secret)
    return _with_secret(runtime, destination, generated)


def callback_url(runtime: Runtime, request: Request) -> str:
    base = runtime.settings.public_url or str(request.base_url)
    return base.rstrip("/") + STRAVA_CALLBACK_PATH


@router.get(
    "/{destination_id}/strava/connect",
    status_code=status.HTTP_307_TEMPORARY_REDIRECT,
    response_class=RedirectResponse,
    responses={**errors(404), 307: {"description": "To Strava's authorization page"}},
)
async def connect_strava(
    destination_id: IdPath,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    caller: AdminOnly,
) -> RedirectResponse:
    """Redirect to Strava to authorize uploads for this Strava destination (admin keys only:
    whoever finishes the authorization chooses the Strava account workouts go to).

    Strava sends the user back to `/v1/strava/callback` (on PELOSYNC_PUBLIC_URL when set;
    register that host as the app's callback domain). The link is valid for 10 minutes and
    works once.
    """
    url = await service.strava_authorize_url(
        runtime, session, destination_id, callback_url(runtime, request), api_key_id=caller.id
    )
    return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@callback_router.get("/callback")
async def strava_callback(
    runtime: RuntimeDep,
    session: SessionDep,
    state: Annotated[str, Query(max_length=2000)],
    code: Annotated[str | None, Query(max_length=500)] = None,
    scope: Annotated[str | None, Query(max_length=500)] = None,
    error: Annotated[str | None, Query(max_length=500)] = None,
) -> StravaConnected:
    """Where Strava sends the user back: stores the tokens. The `state` works once, and only
    while the admin key that started the authorization is active. A destination parked for
    re-authorization is enabled again; one an admin disabled stays disabled."""
    destination, athlete_id, granted = await service.strava_connect(
        runtime, session, state=state, code=code, scope=scope, error=error, now=runtime.clock()
    )
    return StravaConnected(
        destination_id=destination.id,
        athlete_id=athlete_id,
        scope=granted,
        enabled=destination.enabled,
    )
