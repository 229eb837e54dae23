"""Shared fixtures: databases (SQLite always, PostgreSQL when configured), settings, runtime.

Every database is built by the migrations, once per test process: each test gets its own copy of
a migrated template (a SQLite file; a PostgreSQL template database). PostgreSQL tests run when
``PELOSYNC_TEST_DATABASE_URL`` points at a server (``.ci/run`` sets it); each drops its database
after.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file for this test process; each test gets a copy of it."""
    path = tmp_path_factory.mktemp("template") / "pelosync.db"

    async def create() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(engine)
        finally:
            # Closing the last connection checkpoints the WAL: the file alone is the database.
            await engine.dispose()

    asyncio.run(create())
    return path


@asynccontextmanager
async def fresh_database(
    kind: str,
    tmp_path: Path,
    sqlite_template: Path,
    pg_template: str | None,
    *,
    file_name: str = "pelosync.db",
) -> AsyncIterator[str]:
    """The URL of a fresh, migrated database of ``kind`` ("sqlite" or "postgres", dropped
    after); a PostgreSQL one skips the test without :data:`PG_ENV`. ``file_name``: SQLite's
    file in ``tmp_path``."""
    if kind == "sqlite":
        path = tmp_path / file_name
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
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
    try:
        yield _async_url(_with_db(dsn, name))
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    pg_template: str | None,
) -> AsyncIterator[str]:
    """A fresh, migrated database: a SQLite file, or a PostgreSQL database of its own."""
    async with fresh_database(request.param, tmp_path, sqlite_template, pg_template) as url:
        yield url


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": Environment.TESTING,
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "secret_key": TEST_SECRET_KEY,
        "convert_workers": 0,
        "tick_seconds": 0.2,
        "lease_seconds": 30,
        # Tests send many wrong keys on purpose from one address (tests/api/test_throttle.py
        # sets its own limit).
        "auth_failures_per_minute": 100_000,
        # Folder destinations of the tests live anywhere under the test's own directory.
        "export_roots": str(tmp_path),
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
