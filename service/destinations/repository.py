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

    async def page(self, *, after_id: int | None, limit: int) -> list[Destination]:
        """Destinations in id order after ``after_id``, up to ``limit``."""
        stmt = select(Destination).order_by(Destination.id).limit(limit)
        if after_id is not None:
            stmt = stmt.where(Destination.id > after_id)
        return list((await self.session.execute(stmt)).scalars())

    async def delete(self, destination: Destination) -> None:
        await self.session.delete(destination)
        await self.session.flush()
