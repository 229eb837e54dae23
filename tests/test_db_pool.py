"""PostgreSQL's connection pool: a pooled connection is pinged before use only after sitting
idle (``PING_IDLE_AFTER_S``), so a connection in steady use costs no round trip, and one that
died while idle (a restarted server, a proxy's idle timeout) is replaced before it fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from service import db

only_postgres = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def kill(engine: AsyncEngine, pid: int) -> None:
    """End ``pid``'s server process from a connection outside the pool, as a restart would."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    other = await asyncpg.connect(url)
    try:
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await other.close()


@pytest.mark.postgres
@only_postgres
async def test_a_connection_that_died_while_idle_is_replaced_before_use(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await backend_pid(engine)
    await kill(engine, first)
    monkeypatch.setattr(db, "PING_IDLE_AFTER_S", 0.0)  # it has been idle long enough
    assert await backend_pid(engine) != first  # no error: the ping found it dead


@pytest.mark.postgres
@only_postgres
async def test_a_connection_in_steady_use_is_not_pinged(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_IDLE_AFTER_S", 3600.0)  # however slow this machine is
    first = await backend_pid(engine)
    await kill(engine, first)
    # Used a moment ago: taken as alive, so its death shows on use (once: every connection
    # opened before it is then replaced).
    with pytest.raises(DBAPIError) as raised:
        await backend_pid(engine)
    assert raised.value.connection_invalidated
    assert await backend_pid(engine) != first


@pytest.mark.postgres
@only_postgres
async def test_bursts_reuse_the_pooled_connections_and_wait_past_the_pool(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "POOL_SIZE", 4)
    engine = db.create_engine(database_url)

    async def burst(size: int) -> list[int]:
        together = asyncio.Barrier(min(size, db.POOL_SIZE))

        async def hold() -> int:
            async with engine.connect() as connection:
                pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                await together.wait()  # every connection of the pool in use at once
                return int(pid)

        return await asyncio.wait_for(asyncio.gather(*(hold() for _ in range(size))), 30)

    try:
        first = set(await burst(4))
        assert len(first) == 4
        # Past the pool, requests wait for a connection rather than open more (or fail);
        # and connections returned are kept, not closed and opened again for the next burst.
        assert set(await burst(4 + 4)) == first
        assert set(await burst(4)) == first
    finally:
        await engine.dispose()


async def test_the_pool_covers_the_apis_concurrency(database_url: str) -> None:
    engine = db.create_engine(database_url)
    try:
        if engine.dialect.name == "postgresql":
            assert engine.pool.size() == db.POOL_SIZE  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
