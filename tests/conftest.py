"""Shared fixtures: databases (SQLite always, PostgreSQL when configured), settings, runtime.

Every database is built by the migrations. PostgreSQL tests run when
``PELOSYNC_TEST_DATABASE_URL`` points at a server (``.ci/run`` sets it); each test gets its own
database, copied from a migrated template made once per test process, and drops it after.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from service.config import Environment, Settings
from service.db import create_engine
from service.migrate import upgrade
from service.runtime import Runtime, open_runtime

TEST_SECRET_KEY = "Yk2zWQ6mJ6cLJx8V8b0p3xwq9G6gQ0p3o0yHk2Qm3Uo="
PG_ENV = "PELOSYNC_TEST_DATABASE_URL"


def _pg_admin_dsn() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        return None
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_db(dsn: str, name: str) -> str:
    base = dsn.rsplit("/", 1)[0]
    return f"{base}/{name}"


def _async_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """A migrated template database for this test process (None without PostgreSQL)."""
    dsn = _pg_admin_dsn()
    if dsn is None:
        yield None
        return
    name = f"pelosync_tpl_{os.getpid()}"

    async def create() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        engine = create_engine(_async_url(_with_db(dsn, name)))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.exit(f"{PG_ENV} is set but PostgreSQL is unusable: {exc}", returncode=3)
    yield name
    asyncio.run(drop())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_template: str | None
) -> AsyncIterator[str]:
    """A fresh, migrated database: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'pelosync.db'}"
        engine = create_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        yield url
        return
    dsn = _pg_admin_dsn()
    if dsn is None or pg_template is None:
        pytest.skip(f"PostgreSQL tests need {PG_ENV}")
    name = f"pelosync_t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    finally:
        await conn.close()
    yield _async_url(_with_db(dsn, name))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": Environment.TESTING,
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "secret_key": TEST_SECRET_KEY,
        "convert_workers": 0,
        "tick_seconds": 0.2,
        "lease_seconds": 30,
        # Tests make bursts of requests to the local sandbox; the budget's own tests set it low.
        "peloton_max_rps": 1000,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def runtime(tmp_path: Path, database_url: str) -> AsyncIterator[Runtime]:
    async with open_runtime(make_settings(tmp_path, database_url)) as rt:
        yield rt


@pytest.fixture(autouse=True)
def _quiet_structlog() -> Iterator[None]:
    # Tests capture log lines with structlog.testing.capture_logs where they assert on them.
    yield
    structlog.reset_defaults()
