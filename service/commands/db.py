"""``pelosync db``: schema migrations."""

from __future__ import annotations

import typer

from service.commands.common import run, setup
from service.db import create_engine
from service.migrate import check_current, current_revision, head_revision, upgrade

app = typer.Typer(help="Database schema: upgrade, show, check.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Apply every pending migration."""
    settings = setup("ERROR")

    async def go() -> str | None:
        engine = create_engine(settings.resolved_database_url())
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    typer.echo(f"database at revision {run(go())} (head {head_revision()})")


@app.command("current")
def current_command() -> None:
    """Print the database's revision and the newest one this version knows."""
    settings = setup("ERROR")

    async def go() -> str | None:
        engine = create_engine(settings.resolved_database_url())
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    typer.echo(f"current: {run(go()) or '(empty database)'}\nhead:    {head_revision()}")


@app.command("check")
def check_command() -> None:
    """Exit 0 if the schema is current, else print what to do and exit 2."""
    settings = setup("ERROR")

    async def go() -> None:
        engine = create_engine(settings.resolved_database_url())
        try:
            await check_current(engine)
        finally:
            await engine.dispose()

    run(go())
    typer.echo("schema is current")
