"""API keys: creating, checking, revoking, and the first key of a new installation.

A key is ``psk_`` followed by 43 random URL-safe characters (256 bits). Only its SHA-256 is
stored: a key that random needs no slow hash, and a database leak reveals no usable key.
``last_used_at`` is written at most once a minute per key, so reads stay reads.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.models import ApiKey, Role
from service.auth.repository import ApiKeyRepository
from service.errors import Conflict, NotFound, PelosyncError

log = structlog.get_logger(__name__)

KEY_PREFIX = "psk_"
SHOWN_PREFIX_CHARS = 8  # of the random part, kept in clear to tell keys apart
TOUCH_EVERY = timedelta(minutes=1)
FIRST_KEY_NAME = "first admin key"


class Unauthenticated(PelosyncError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401
    title = "Unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="pelosync"'}


class Forbidden(PelosyncError):
    """A valid key whose role does not allow the request (a read-only key writing)."""

    status_code = 403
    title = "Forbidden"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).hexdigest()


def shown_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + SHOWN_PREFIX_CHARS]


async def create_key(
    session: AsyncSession, *, name: str, role: Role, now: datetime
) -> tuple[ApiKey, str]:
    """A new key: (its row, the key itself, which is never stored nor shown again)."""
    key = generate_key()
    row = await ApiKeyRepository(session).add(
        ApiKey(
            name=name, role=role, prefix=shown_prefix(key), key_hash=hash_key(key), created_at=now
        )
    )
    log.info("auth.key.created", key_id=row.id, role=role.value)
    return row, key


async def authenticate(session: AsyncSession, presented: str | None, now: datetime) -> ApiKey:
    """The active key ``presented`` is, or :class:`Unauthenticated`."""
    if not presented:
        raise Unauthenticated("an API key is required: send 'Authorization: Bearer <key>'")
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        raise Unauthenticated("the API key is not valid")
    repo = ApiKeyRepository(session)
    row = await repo.by_hash(hash_key(presented))
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("the API key is not valid")
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        await repo.touch(row.id, now)
        row.last_used_at = now
    return row


def authorize(key: ApiKey, *, write: bool) -> None:
    """Raise :class:`Forbidden` unless ``key``'s role allows the request."""
    if write and key.role != Role.ADMIN:
        raise Forbidden("this API key is read-only; an admin key is needed to change anything")


async def list_keys(session: AsyncSession, *, include_revoked: bool = False) -> list[ApiKey]:
    return await ApiKeyRepository(session).all(include_revoked=include_revoked)


async def revoke(session: AsyncSession, key_id: int, now: datetime) -> ApiKey:
    """Revoke a key at once. The last active admin key cannot be revoked (create another)."""
    repo = ApiKeyRepository(session)
    row = await repo.get(key_id)
    if row is None:
        raise NotFound(f"API key {key_id} not found")
    if row.revoked_at is not None:
        return row
    if row.role == Role.ADMIN and await repo.active_admin_count() <= 1:
        raise Conflict("this is the last admin key; create another admin key before revoking it")
    row.revoked_at = now
    await session.flush()
    log.info("auth.key.revoked", key_id=row.id)
    return row


async def ensure_first_key(session: AsyncSession, now: datetime) -> str | None:
    """Create an admin key if there is no active one; the key (to print once), or None."""
    if session.get_bind().dialect.name == "postgresql":
        # Replicas starting together: one creates the key, the others then find it.
        await session.execute(text("SELECT pg_advisory_xact_lock(74230618)"))
    if await ApiKeyRepository(session).active_admin_count() > 0:
        return None
    _, key = await create_key(session, name=FIRST_KEY_NAME, role=Role.ADMIN, now=now)
    return key
