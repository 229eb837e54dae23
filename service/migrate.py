"""Schema migrations (Alembic) from inside the service: upgrade, and is the schema current?"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from service.dialect import MIGRATIONS_TURN, take_turns
from service.errors import PelosyncError

_HERE = Path(__file__).resolve().parent


class SchemaOutdated(PelosyncError):
    title = "Database schema is not current"
    status_code = 503


def migrations_dir() -> Path:
    # A wheel carries the migrations inside the package; a source checkout has them beside it.
    for candidate in (_HERE / "migrations", _HERE.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise PelosyncError("the migrations folder is missing from this installation")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["configure_logging"] = False
    if url is not None:
        config.attributes["url"] = url
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations over a connection of ``engine`` (safe to run on every start)."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        # Replicas starting together take turns; the later ones find nothing to do.
        await take_turns(connection, MIGRATIONS_TURN)
        await connection.run_sync(run)


async def check_current(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaOutdated` unless the database is at the newest revision."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutdated(
            f"database schema is at {current or 'nothing (empty database)'}, this version "
            f"needs {head}: run `pelosync db upgrade` (or start without --no-migrate)"
        )
