"""``/v1/deliveries``: every file sent (or to send) to a destination, and its attempts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from service.auth.deps import current_key
from service.deliveries import service as deliveries_service
from service.deliveries.models import DeliveryState
from service.deliveries.schemas import AttemptOut, DeliveryDetail, DeliveryOut
from service.deps import ReadConnectionDep, RuntimeDep, SessionDep
from service.openapi import errors
from service.pagination import decode_id_cursor, encode_cursor, page_response
from service.schemas import CursorQuery, IdPath, IdQuery, Limit, Page

router = APIRouter(
    prefix="/v1/deliveries",
    tags=["deliveries"],
    dependencies=[Depends(current_key)],
    responses=errors(401, 403, 422),
)


@router.get("", response_model=Page[DeliveryOut])
async def list_deliveries(
    db: ReadConnectionDep,
    state: DeliveryState | None = None,
    destination_id: IdQuery = None,
    workout_id: IdQuery = None,
    limit: Limit = 50,
    cursor: CursorQuery = None,
) -> Response:
    """List deliveries, newest first, by state, destination and workout."""
    rows = await deliveries_service.page(
        db,
        limit=limit,
        before_id=decode_id_cursor(cursor),
        state=state.value if state else None,
        destination_id=destination_id,
        workout_id=workout_id,
    )
    return page_response(rows, limit, lambda d: encode_cursor(None, d.id))


@router.get("/{delivery_id}", responses=errors(404))
async def get_delivery(delivery_id: IdPath, session: SessionDep) -> DeliveryDetail:
    """One delivery with every attempt: when, how long, the answer, the error."""
    delivery, attempts = await deliveries_service.get(session, delivery_id)
    return DeliveryDetail(
        **DeliveryOut.model_validate(delivery).model_dump(),
        attempts_log=[AttemptOut.model_validate(a) for a in attempts],
    )


@router.post(
    "/{delivery_id}/retry", status_code=status.HTTP_202_ACCEPTED, responses=errors(404, 409)
)
async def retry(delivery_id: IdPath, runtime: RuntimeDep, session: SessionDep) -> DeliveryOut:
    """Send a failed (or waiting) delivery again now, with a fresh retry budget.

    It keeps its message id: receivers see the same message again. 409 if it already
    succeeded (replay its destination to send it again). Nothing is sent while its
    destination is disabled.
    """
    delivery = await deliveries_service.retry_delivery(session, delivery_id, runtime.clock())
    return DeliveryOut.model_validate(delivery)
