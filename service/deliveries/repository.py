"""SQL for deliveries and their attempts."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from service.db import insert_ignoring_duplicates
from service.deliveries.models import Delivery


def new_message_id() -> str:
    """A Standard Webhooks message id: stable for the delivery's whole life."""
    return "msg_" + secrets.token_hex(12)


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_pending(self, workout_id: int, destination_id: int, formats: list[str]) -> int:
        """One pending delivery per format; existing ones are left alone. Returns how many."""
        created = 0
        for fmt in formats:
            stmt = (
                insert_ignoring_duplicates(
                    self.session, Delivery, ("workout_id", "destination_id", "format")
                )
                .values(
                    workout_id=workout_id,
                    destination_id=destination_id,
                    format=fmt,
                    message_id=new_message_id(),
                    state="pending",
                    attempts=0,
                )
                .returning(Delivery.id)
            )
            if (await self.session.execute(stmt)).scalar_one_or_none() is not None:
                created += 1
        return created
