"""The schema comes only from migrations: they match the models and round-trip."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from service.db import create_engine
from service.migrate import (
    SchemaOutdated,
    alembic_config,
    check_current,
    current_revision,
    head_revision,
    upgrade,
)
from service.models import Base


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
        await check_current(engine)
    finally:
        await engine.dispose()


async def test_downgrade_and_upgrade_round_trip(database_url: str) -> None:
    def down(conn: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "base")

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(down)
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) <= {"alembic_version"}
        with pytest.raises(SchemaOutdated, match="pelosync db upgrade"):
            await check_current(engine)
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as connection:
            assert {"accounts", "workouts", "deliveries"} <= await connection.run_sync(_tables)
    finally:
        await engine.dispose()
