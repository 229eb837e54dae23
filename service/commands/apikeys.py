"""``pelosync apikey``: create, list and revoke the admin API's keys."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.auth import service as keys
from service.auth.first_key import first_key_path, write_first_key
from service.auth.models import Role
from service.commands.common import run, setup
from service.db import create_engine, create_session_factory, utcnow
from service.migrate import check_current

if TYPE_CHECKING:
    from service.runtime import Runtime

app = typer.Typer(help="API keys of the admin API.", no_args_is_help=True)


@asynccontextmanager
async def _session() -> AsyncIterator[AsyncSession]:
    """One transaction on the configured database (no other resources needed)."""
    settings = setup("ERROR")
    engine = create_engine(settings.resolved_database_url())
    try:
        await check_current(engine)
        async with create_session_factory(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    read_only: Annotated[
        bool, typer.Option("--read-only", help="GET requests only (dashboards, monitoring).")
    ] = False,
) -> None:
    """Create a key and print it. It is shown only this once: store it now."""
    role = Role.READ_ONLY if read_only else Role.ADMIN

    async def go() -> tuple[int, str]:
        async with _session() as session:
            row, key = await keys.create_key(session, name=name, role=role, now=utcnow())
            return row.id, key

    key_id, key = run(go())
    typer.echo(f"created {role.value} key {key_id} ({name}); it is shown only once:", err=True)
    typer.echo(key)


@app.command("list")
def list_keys(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List keys: id, role, first characters, name, created, last used (never the key)."""

    async def go() -> list[str]:
        async with _session() as session:
            rows = await keys.list_keys(session, include_revoked=all_keys)

        def when(value: object) -> str:
            return f"{value:%Y-%m-%d %H:%M}Z" if value is not None else "never"

        return [
            f"{k.id:>4}  {k.role:9}  {k.prefix}…  {k.name[:30]:30}  created {when(k.created_at)}"
            f"  used {when(k.last_used_at)}"
            + (f"  REVOKED {when(k.revoked_at)}" if k.revoked_at else "")
            for k in rows
        ]

    lines = run(go())
    typer.echo("\n".join(lines) if lines else "no API keys: pelosync apikey create --name NAME")


@app.command("revoke")
def revoke(key_id: int) -> None:
    """Revoke a key at once (not the last admin key: create another first)."""

    async def go() -> None:
        async with _session() as session:
            await keys.revoke(session, key_id, utcnow())

    run(go())
    typer.echo(f"key {key_id} revoked")


async def announce_first_key(
    sessions: async_sessionmaker[AsyncSession],
    now: datetime,
    api_url: str,
    *,
    demo: bool,
    data_dir: Path,
) -> None:
    """With no active admin key in the database, create one and hand it over: written to
    :func:`~service.auth.first_key.first_key_path` (0600) and printed only on a terminal,
    so it never lands in a container's log; in demo mode also say where the dashboard is."""
    async with sessions() as session, session.begin():
        key = await keys.ensure_first_key(session, now)
    if key is not None:
        path = write_first_key(data_dir, key)
        shown = f"  {key}\n\n" if sys.stderr.isatty() else ""
        typer.echo(
            f"\npelosync: created the first admin API key; it is in {path} (readable by this "
            f"user only: store it somewhere safe, then delete the file)\n\n{shown}"
            f"  use it as 'Authorization: Bearer <key>'; more keys: pelosync apikey create\n",
            err=True,
        )
    if demo:
        key_file = first_key_path(data_dir)
        where = (
            f"the key in {key_file}"
            if key_file.exists()
            else "the admin key given when this demo first started; lost it? make another "
            "with: pelosync apikey create --name dashboard"
        )
        typer.echo(
            f"pelosync demo dashboard: {api_url}/ (sign in with {where}; API docs at "
            f"{api_url}/docs)\n",
            err=True,
        )


def first_key_setup(
    api_url: str, *, demo: bool, then: Callable[[Runtime], Awaitable[None]] | None = None
) -> Callable[[Runtime], Awaitable[None]]:
    """For ``serve``: :func:`announce_first_key` once the runtime is up (after ``then``)."""

    async def setup_keys(rt: Runtime) -> None:
        if then is not None:
            await then(rt)
        await announce_first_key(
            rt.sessions, rt.clock(), api_url, demo=demo, data_dir=rt.settings.data_dir
        )

    return setup_keys
