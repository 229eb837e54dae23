"""API keys: creating, checking, revoking, and the first key of a new installation.

A key is ``psk_`` followed by 43 random URL-safe characters (256 bits). Only its SHA-256 is
stored: a key that random needs no slow hash, and a database leak reveals no usable key.
``last_used_at`` is written at most once a minute per key, so reads stay reads.

The API checks keys with ``keys_checked.verify`` (:class:`KeyCache`): a key found active is
trusted for :data:`KEY_CACHE_FOR` (5 s) before it is looked up again. That is the bound on
revocation: a key revoked through this process's API is refused by it at once; one revoked
through another replica or by ``pelosync apikey revoke`` is refused everywhere within 5 s. (The
dashboard checks its session's key on every page.)
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.auth.models import ApiKey, Role
from service.auth.repository import ApiKeyRepository
from service.db import autocommit_session
from service.dialect import FIRST_KEY_TURN, take_turns
from service.errors import Conflict, NotFound, PelosyncError

log = structlog.get_logger(__name__)

KEY_PREFIX = "psk_"
SHOWN_PREFIX_CHARS = 8  # of the random part, kept in clear to tell keys apart
TOUCH_EVERY = timedelta(minutes=1)
KEY_CACHE_FOR = timedelta(seconds=5)
_KEY_CACHE_MAX = 10_000  # distinct active keys remembered; far more than any installation has
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


def _presented_hash(presented: str | None) -> str:
    if not presented:
        raise Unauthenticated("an API key is required: send 'Authorization: Bearer <key>'")
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        raise Unauthenticated("the API key is not valid")
    return hash_key(presented)


async def authenticate(session: AsyncSession, presented: str | None, now: datetime) -> ApiKey:
    """The active key ``presented`` is, or :class:`Unauthenticated` (looked up every time)."""
    repo = ApiKeyRepository(session)
    row = await repo.by_hash(_presented_hash(presented))
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("the API key is not valid")
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        await repo.touch(row.id, now)
        row.last_used_at = now
    return row


@dataclass(frozen=True)
class Caller:
    """The active API key a request came with: who (for logs) and what it may do."""

    id: int
    role: str


@dataclass
class _Checked:
    caller: Caller
    checked_at: datetime  # the runtime's clock when it was looked up
    last_used_at: datetime | None  # as this process last wrote or read it


# Performance machinery (benchmarks/api.py): no key lookup on most requests.
class KeyCache:
    """Keys found active in the last :data:`KEY_CACHE_FOR`, by hash (one per process).

    Active keys are kept, and unknown or revoked ones too (so a repeated wrong key costs no
    database work; :mod:`service.throttle` stops a client trying many), at most one lookup
    per key is in flight (the requests of 50 clients sharing a key wait for it rather than all
    asking), and ``last_used_at`` is written by one request a minute, not by all at once.
    """

    def __init__(self) -> None:
        self._checked: dict[str, _Checked] = {}
        # Keys found unknown or revoked, and when: refused without a lookup for KEY_CACHE_FOR
        # (a key is never created with a hash somebody presented before).
        self._unknown: dict[str, datetime] = {}
        self._lookups: dict[str, asyncio.Task[_Checked | None]] = {}
        self._forgotten = 0  # forget() calls: a lookup that overlapped one is not remembered

    async def verify(
        self, sessions: async_sessionmaker[AsyncSession], presented: str | None, now: datetime
    ) -> Caller:
        """The active key ``presented`` is, or :class:`Unauthenticated`."""
        key_hash = _presented_hash(presented)
        unknown_at = self._unknown.get(key_hash)
        if unknown_at is not None and unknown_at <= now < unknown_at + KEY_CACHE_FOR:
            raise Unauthenticated("the API key is not valid")  # no lookup: a guess repeated
        entry = self._checked.get(key_hash)
        # (A clock set back counts as expired too.)
        if entry is None or not entry.checked_at <= now < entry.checked_at + KEY_CACHE_FOR:
            entry = await self._shared_lookup(sessions, key_hash, now)
            if entry is None:
                if len(self._unknown) >= _KEY_CACHE_MAX:
                    self._unknown.clear()
                self._unknown[key_hash] = now
                raise Unauthenticated("the API key is not valid")
        if entry.last_used_at is None or now - entry.last_used_at >= TOUCH_EVERY:
            entry.last_used_at = now  # before the write: the other requests need not touch
            async with autocommit_session(sessions) as session:
                await ApiKeyRepository(session).touch(entry.caller.id, now)
        return entry.caller

    def vouches_for(self, presented: str | None, now: datetime) -> bool:
        """Whether ``presented`` is a key this process found active moments ago: such a key
        passes even when its address is throttled (a wrong key from the same address, or a
        proxy not declared in PELOSYNC_FORWARDED_ALLOW_IPS, must not lock out good clients)."""
        if not presented:
            return False
        entry = self._checked.get(hash_key(presented))
        return entry is not None and entry.checked_at <= now < entry.checked_at + KEY_CACHE_FOR

    async def _shared_lookup(
        self, sessions: async_sessionmaker[AsyncSession], key_hash: str, now: datetime
    ) -> _Checked | None:
        loop = asyncio.get_running_loop()
        lookup = self._lookups.get(key_hash)
        if lookup is None or lookup.done() or lookup.get_loop() is not loop:
            lookup = loop.create_task(self._look_up(sessions, key_hash, now))
            self._lookups[key_hash] = lookup
            lookup.add_done_callback(lambda task: self._finished(key_hash, task))
        # Shielded: a request that goes away does not cancel the lookup others wait for.
        return await asyncio.shield(lookup)

    def _finished(self, key_hash: str, task: asyncio.Task[_Checked | None]) -> None:
        if self._lookups.get(key_hash) is task:
            del self._lookups[key_hash]
        if not task.cancelled():
            task.exception()  # retrieved: its waiters (if any are left) have raised it

    async def _look_up(
        self, sessions: async_sessionmaker[AsyncSession], key_hash: str, now: datetime
    ) -> _Checked | None:
        forgotten = self._forgotten
        async with autocommit_session(sessions) as session:
            row = await ApiKeyRepository(session).by_hash(key_hash)
        if row is None or row.revoked_at is not None:
            self._checked.pop(key_hash, None)
            return None
        entry = _Checked(Caller(row.id, row.role), now, row.last_used_at)
        if forgotten == self._forgotten:
            if len(self._checked) >= _KEY_CACHE_MAX:
                self._checked.clear()
            self._checked[key_hash] = entry
        return entry

    def forget(self, key_id: int) -> None:
        """Drop a key (revoked by this process): its next use is looked up."""
        self._forgotten += 1
        for key_hash, entry in list(self._checked.items()):
            if entry.caller.id == key_id:
                del self._checked[key_hash]

    def clear(self) -> None:
        """Forget every key."""
        self._forgotten += 1
        self._checked.clear()
        self._unknown.clear()


keys_checked = KeyCache()


def authorize(key: ApiKey | Caller, *, write: bool) -> None:
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
    # Forgotten now and again once committed: a request checking the key in between still
    # read it active and may have remembered it.
    keys_checked.forget(row.id)
    event.listen(session.sync_session, "after_commit", _forget_after_commit(row.id), once=True)
    log.info("auth.key.revoked", key_id=row.id)
    return row


def _forget_after_commit(key_id: int) -> Any:
    def forget(_session: Any) -> None:
        keys_checked.forget(key_id)

    return forget


async def ensure_first_key(session: AsyncSession, now: datetime) -> str | None:
    """Create an admin key if there is no active one; the key (to print once), or None."""
    # Replicas starting together: one creates the key, the others then find it.
    await take_turns(session, FIRST_KEY_TURN)
    if await ApiKeyRepository(session).active_admin_count() > 0:
        return None
    _, key = await create_key(session, name=FIRST_KEY_NAME, role=Role.ADMIN, now=now)
    return key
