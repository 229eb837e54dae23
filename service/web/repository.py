"""SQL of the dashboard's server-side sessions and used form tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.models import ApiKey
from service.web.models import UsedFormToken, WebSession


class WebSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self, session_hash: str, key_id: int, now: datetime, expires: datetime
    ) -> None:
        self.session.add(
            WebSession(session_hash=session_hash, key_id=key_id, created_at=now, expires_at=expires)
        )
        await self.session.flush()

    async def active(self, session_hash: str, now: datetime) -> ApiKey | None:
        """The unrevoked key of the live (not ended, not expired) session, or None."""
        found = await self.session.execute(
            select(ApiKey)
            .join(WebSession, WebSession.key_id == ApiKey.id)
            .where(
                WebSession.session_hash == session_hash,
                WebSession.ended_at.is_(None),
                WebSession.expires_at > now,
                ApiKey.revoked_at.is_(None),
            )
        )
        return found.scalar_one_or_none()

    async def end(self, session_hash: str, now: datetime) -> None:
        await self.session.execute(
            update(WebSession)
            .where(WebSession.session_hash == session_hash, WebSession.ended_at.is_(None))
            .values(ended_at=now)
        )

    async def forget_expired(self, now: datetime) -> None:
        """Sessions past their expiry, ended or not: nothing can use them any more."""
        await self.session.execute(delete(WebSession).where(WebSession.expires_at <= now))

    async def use_form_token(self, nonce: str, expires: datetime, now: datetime) -> bool:
        """Record ``nonce`` as used; False if it already was. Forgets expired nonces."""
        await self.session.execute(delete(UsedFormToken).where(UsedFormToken.expires_at <= now))
        try:
            async with self.session.begin_nested():
                self.session.add(UsedFormToken(nonce=nonce, expires_at=expires))
        except IntegrityError:
            return False
        return True
