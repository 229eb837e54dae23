"""``/v1/files``: workout files behind signed, expiring links (no API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from service.convert.formats import Format
from service.deps import RuntimeDep, SessionDep
from service.files.signing import verify
from service.openapi import errors
from service.schemas import IdPath
from service.workouts import service as workouts
from service.workouts.router import FILE_RESPONSE, file_response

router = APIRouter(prefix="/v1/files", tags=["workouts"], responses=errors(403, 404, 422))


@router.get("/workouts/{workout_id}/{format}", response_class=Response, responses=FILE_RESPONSE)
async def download_signed(
    workout_id: IdPath,
    format: Format,
    expires: Annotated[int, Query(ge=0, le=2**40, description="Unix time it expires.")],
    signature: Annotated[str, Query(max_length=100, pattern=r"^[A-Za-z0-9_-]+$")],
    runtime: RuntimeDep,
    session: SessionDep,
) -> Response:
    """A workout file through a signed link (403 if the link is forged or expired)."""
    verify(runtime, workout_id, format.value, expires, signature)
    file = await workouts.render(runtime, session, workout_id, format)
    return file_response(file.data, file.filename, file.content_type)
