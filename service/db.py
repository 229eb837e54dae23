"""Database plumbing: declarative base, UTC datetimes, engine and session factories.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy timeout, so the
API and the scheduler can share one file; PostgreSQL is used as is. The schema is created only
by the Alembic migrations in ``migrations/``. What differs between the two databases is asked of
:mod:`service.dialect` (the database seam).

PostgreSQL connections are pooled (up to :data:`POOL_SIZE`, all kept once opened) and a pooled
connection is pinged before use only when it has sat unused for
:data:`PING_IDLE_AFTER_S` or more: a connection in steady use is known to be alive, and pinging
it (``pool_pre_ping``: BEGIN, a query and ROLLBACK) was three round trips on every request.
A connection that died while in use fails that use, and SQLAlchemy then replaces every pooled
connection opened before it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, event, exc, make_url
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from service import dialect as db_dialect

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every ORM model; one metadata for Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if db_dialect.stores_naive_datetimes(dialect) else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if db_dialect.reads_utc_datetimes(dialect):
            # asyncpg reads ``timestamptz`` as aware datetimes in UTC already: nothing to do
            # (a page of 50 rows has some 200 of them).
            return None
        return super().result_processor(dialect, coltype)


# What read-only queries run on: a session, or (the API's lists) a bare connection, which skips
# the ORM session's own work on every request.
Reader = AsyncSession | AsyncConnection


def given(**values: Any) -> dict[str, Any]:
    """The bind parameters that were given (not None): those of a statement built for the
    filters present (the lists' statements are cached per combination of filters)."""
    return {name: value for name, value in values.items() if value is not None}


def utcnow() -> datetime:
    return datetime.now(UTC)


# Connections per process, for the API's concurrent requests (a list request holds one for
# about a millisecond) and the scheduler's jobs; past them a request waits for one. All are
# kept once opened. (Not a smaller kept pool plus "overflow": SQLAlchemy closes an overflow
# connection as soon as it is returned to a full pool, so a load around the pool's size kept
# opening connections, about 6 a second, each a PostgreSQL process forked and statements
# prepared again.)
# Performance machinery (benchmarks/api.py): the pool's size and its idle-only ping
# (``_ping_if_idle``, instead of a ping at every checkout).
POOL_SIZE = 30
PING_IDLE_AFTER_S = 10.0
_CHECKED_IN_AT = "pelosync_checked_in_at"


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _ping_if_idle(dialect: Dialect) -> Any:
    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # A new (or reconnected) record has no check-in time: it was just opened.
        checked_in = record.info.get(_CHECKED_IN_AT)
        if checked_in is None or time.monotonic() - checked_in < PING_IDLE_AFTER_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # As pool_pre_ping does: the pool retries with a fresh connection and
                # replaces every connection opened before this one (a restarted server).
                raise exc.InvalidatePoolError() from error
            raise

    return checkout


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets its pragmas on every connection, PostgreSQL a pool sized
    for the API's concurrency whose idle connections are pinged before use."""
    if db_dialect.single_writer(url):
        kwargs.setdefault("connect_args", {"timeout": 10})
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    elif "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", 0)
    engine = create_async_engine(url, **kwargs)
    if db_dialect.single_writer(engine):
        event.listen(engine.sync_engine, "connect", db_dialect.sqlite_pragmas)
    elif not kwargs.get("pool_pre_ping"):
        event.listen(engine.sync_engine, "checkin", _note_checkin)
        event.listen(engine.sync_engine, "checkout", _ping_if_idle(engine.dialect))
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


# Performance machinery (benchmarks/api.py, benchmarks/deliver.py --postgres): the PostgreSQL
# fast path without BEGIN and COMMIT round trips; SQLite sessions are left as they are.
@asynccontextmanager
async def autocommit_session(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session for work that needs no transaction: reads, or one single-statement write.

    On PostgreSQL each statement commits on its own, which spares the BEGIN and COMMIT round
    trips of a transaction (READ COMMITTED gives every statement its own snapshot anyway, so
    reads see nothing less consistent). Never for several writes that belong together. SQLite
    only begins a transaction before a write, so its sessions are left as they are and the
    write, if any, is committed on exit.
    """
    async with sessions() as session:
        await db_dialect.autocommit(session)
        yield session
        await session.commit()


# Performance machinery (benchmarks/api.py): one database round trip per list request.
@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for reads only, without a transaction on PostgreSQL (as in
    :func:`autocommit_session`) and without an ORM session: the admin API's lists."""
    async with engine.connect() as connection:
        await db_dialect.autocommit(connection)
        yield connection
