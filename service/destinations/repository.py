"""SQL for destinations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.destinations.models import Destination, OAuthState


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


class OAuthStateRepository:
    """Strava authorizations in progress (single-use ``state`` nonces)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, state: OAuthState) -> None:
        """Store ``state``, dropping the expired ones (abandoned authorizations) first."""
        await self.session.execute(
            delete(OAuthState).where(OAuthState.expires_at <= state.created_at)
        )
        self.session.add(state)
        await self.session.flush()

    async def consume(self, nonce_hash: str, now: datetime) -> tuple[int, int] | None:
        """Delete the unexpired state ``nonce_hash``: its (destination id, key id), or None if
        it is unknown, expired or was consumed already (one statement, so only one of two
        concurrent callbacks gets it)."""
        stmt = (
            delete(OAuthState)
            .where(OAuthState.nonce_hash == nonce_hash, OAuthState.expires_at > now)
            .returning(OAuthState.destination_id, OAuthState.api_key_id)
        )
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1]) if row is not None else None
