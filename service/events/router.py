"""``/v1/events``: the operational events, newest first, with their deliveries to webhooks;
and ``webhooks``, the OpenAPI description of each event type's request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from service.auth.deps import current_key
from service.deps import SessionDep
from service.events import service
from service.events.models import Event, EventDelivery, EventType
from service.events.schemas import BODIES, EventDeliveryOut, EventOut
from service.openapi import errors
from service.pagination import decode_id_cursor, encode_cursor, page_of
from service.schemas import CursorQuery, IdPath, Limit, Page

router = APIRouter(
    prefix="/v1/events",
    tags=["events"],
    dependencies=[Depends(current_key)],
    responses=errors(401, 403, 422),
)

TypeQuery = Annotated[
    list[EventType] | None,
    Query(description="Only these types (repeat the parameter for several)."),
]


@router.get("", response_model=Page[EventOut])
async def list_events(
    session: SessionDep,
    type: TypeQuery = None,
    limit: Limit = 50,
    cursor: CursorQuery = None,
) -> Page[EventOut]:
    """Operational events (``account.needs_reauth``, ``destination.disabled``,
    ``destination.credentials_expiring``, ``delivery.failed``), newest first, each with its
    deliveries to the subscribed webhooks. ``workout.synced`` messages are deliveries: see
    ``/v1/deliveries``."""
    types = [t.value for t in type] if type else None
    rows = await service.listing(
        session, limit=limit + 1, before_id=decode_id_cursor(cursor), types=types
    )
    return page_of([_out(*row) for row in rows], limit, lambda e: encode_cursor(None, e.id))


@router.get("/{event_id}", responses=errors(404))
async def get_event(event_id: IdPath, session: SessionDep) -> EventOut:
    """One event with its deliveries."""
    return _out(*await service.one(session, event_id))


def _out(event: Event, deliveries: list[EventDelivery]) -> EventOut:
    return EventOut(
        **{name: getattr(event, name) for name in EventOut.model_fields if name != "deliveries"},
        deliveries=[EventDeliveryOut.model_validate(d) for d in deliveries],
    )


#: The request each event type sends to a subscribed webhook (``app.webhooks`` in the document).
webhooks = APIRouter(tags=["events"])


def _document(event_type: str, body: type[BaseModel], summary: str) -> None:
    async def receive(event: BaseModel) -> Response:
        raise NotImplementedError  # documentation only: the receiver implements it

    receive.__annotations__["event"] = body  # the type itself (annotations here are strings)

    receive.__doc__ = (
        f"{summary}\n\nSigned as Standard Webhooks say: `webhook-id`, `webhook-timestamp`, "
        "`webhook-signature` (see docs/destinations.md). Answer 2xx; anything else is retried."
    )
    webhooks.add_api_route(
        event_type,
        receive,
        methods=["POST"],
        summary=event_type,
        operation_id=f"event_{event_type.replace('.', '_')}",
        responses={200: {"description": "Received."}},
    )


for _type, (_body, _summary) in BODIES.items():
    _document(_type, _body, _summary)
