"""``/v1/workouts``: workouts fetched from Peloton, their deliveries and their files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from service.auth.deps import current_key
from service.convert.formats import Format
from service.deliveries.schemas import DeliveryOut
from service.deps import ReadConnectionDep, RuntimeDep, SessionDep
from service.files.signing import signed_url
from service.openapi import errors
from service.pagination import decode_time_cursor, encode_cursor, page_response
from service.schemas import CursorQuery, IdPath, IdQuery, Instant, Limit, Page
from service.workouts import service
from service.workouts.schemas import SignedLink, WorkoutDetail, WorkoutOut, WorkoutStatus

router = APIRouter(
    prefix="/v1/workouts",
    tags=["workouts"],
    dependencies=[Depends(current_key)],
    responses=errors(401, 403, 422),
)

FILE_TYPES = ("application/vnd.garmin.tcx+xml", "application/gpx+xml", "application/vnd.ant.fit")
FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, as an attachment named like the files delivered.",
        "content": {
            **{t: {"schema": {"type": "string", "format": "binary"}} for t in FILE_TYPES},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}
Discipline = Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}$", description="cycling...")]


def file_response(data: bytes, filename: str, content_type: str) -> Response:
    return Response(
        data,
        media_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("", response_model=Page[WorkoutOut])
async def list_workouts(
    db: ReadConnectionDep,
    account_id: IdQuery = None,
    discipline: Discipline = None,
    started_from: Annotated[
        Instant | None, Query(description="Started at or after (with a UTC offset).")
    ] = None,
    started_before: Annotated[
        Instant | None, Query(description="Started before (with a UTC offset).")
    ] = None,
    status: WorkoutStatus | None = None,
    limit: Limit = 50,
    cursor: CursorQuery = None,
) -> Response:
    """List workouts, newest first, by account, discipline, start time and delivery status."""
    rows = await service.page(
        db,
        limit=limit,
        before=decode_time_cursor(cursor),
        account_id=account_id,
        discipline=discipline,
        started_from=started_from,
        started_before=started_before,
        status=status.value if status else None,
    )
    return page_response(rows, limit, lambda w: encode_cursor(w.started_at, w.id))


@router.get("/{workout_id}", responses=errors(404))
async def get_workout(workout_id: IdPath, session: SessionDep) -> WorkoutDetail:
    """One workout: its summary, the formats it comes in, and its deliveries."""
    summary, deliveries = await service.get(session, workout_id)
    return WorkoutDetail(
        **summary,
        formats=service.formats_of(summary["has_gps"]),
        deliveries=[DeliveryOut.model_validate(d) for d in deliveries],
    )


@router.get(
    "/{workout_id}/files/{format}",
    response_class=Response,
    responses={**FILE_RESPONSE, **errors(404)},
)
async def download_file(
    workout_id: IdPath, format: Format, runtime: RuntimeDep, session: SessionDep
) -> Response:
    """The workout as a TCX, GPX, FIT or JSON file (422 for GPX without a GPS track)."""
    file = await service.render(runtime, session, workout_id, format)
    return file_response(file.data, file.filename, file.content_type)


@router.get("/{workout_id}/files/{format}/signed-url", responses=errors(404))
async def sign_file_url(
    workout_id: IdPath, format: Format, request: Request, runtime: RuntimeDep, session: SessionDep
) -> SignedLink:
    """A link to the file that works without an API key until it expires (what webhooks get
    for files over their inline limit). On PELOSYNC_PUBLIC_URL when set."""
    await service.exists(session, workout_id)
    base = runtime.settings.public_url or str(request.base_url)
    url, expires_at = signed_url(runtime, base, workout_id, format.value)
    return SignedLink(url=url, expires_at=expires_at)
