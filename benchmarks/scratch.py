"""Scratch databases for the benchmarks: migrated, empty, and gone afterwards."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from service.db import create_engine
from service.migrate import upgrade


@contextlib.asynccontextmanager
async def migrated_database(postgres: str | None, folder: Path) -> AsyncIterator[str]:
    """A migrated, empty database URL: a SQLite file in ``folder``, or (``postgres``, a
    server's URL) a new PostgreSQL database on that server, dropped afterwards."""
    if postgres is None:
        url = f"sqlite+aiosqlite:///{folder / f'bench-{secrets.token_hex(4)}.db'}"
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        yield url
        return
    dsn = postgres.replace("postgresql+asyncpg://", "postgresql://", 1)
    name = f"pelosync_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = "postgresql+asyncpg://" + dsn.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
    try:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        yield url
    finally:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
