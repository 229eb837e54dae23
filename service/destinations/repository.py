"""SQL for destinations."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.destinations.models import Destination


class DestinationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enabled(self) -> list[Destination]:
        stmt = select(Destination).where(Destination.enabled.is_(True)).order_by(Destination.id)
        return list((await self.session.execute(stmt)).scalars())

    async def get(self, destination_id: int) -> Destination | None:
        return await self.session.get(Destination, destination_id)

    async def add(self, destination: Destination) -> Destination:
        self.session.add(destination)
        await self.session.flush()
        return destination
