"""``pelosync serve --demo``: a sandbox Peloton, a linked demo account, a folder export."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import structlog
import typer
from sqlalchemy import select

from service.accounts import linking
from service.accounts.repository import AccountRepository
from service.destinations.models import Destination
from service.peloton.sandbox import SandboxConfig, SandboxState
from service.runtime import Runtime

log = structlog.get_logger(__name__)

DEMO_SEED = 2024
DEMO_DESTINATION = "Demo folder export"
DEMO_WORKOUTS = 6
# Besides the generated history: the kinds every page of the dashboard should be seen with
# (a GPS route and its GPX; a rower's strokes; a run Peloton imported from Garmin, kept in the
# ledger but not delivered), and how many days ago each was done.
DEMO_EXTRA = (("outdoor_run", 2.5), ("rowing", 1.0), ("outdoor_just_run_garmin", 0.5))
DAY = 86_400


def demo_sandbox(now: int) -> SandboxState:
    """The demo's sandbox Peloton: one rider with a generated history ending three days
    ago, then an outdoor run (GPS), a rowing class and a run imported from Garmin since."""
    state = SandboxState(
        SandboxConfig(seed=DEMO_SEED, users=1, workouts=DEMO_WORKOUTS, anchor=now - 3 * DAY)
    )
    rider = next(iter(state.accounts.values()))
    for kind, days_ago in DEMO_EXTRA:
        # Sandbox time is moved back to "then" to record each one, and put back after.
        offset = now - days_ago * DAY - state.now()
        state.advance(offset)
        try:
            state.add_workouts(rider, kind=kind, heart_rate=True)
        finally:
            state.advance(-offset)
    return state


def demo_setup(
    state: SandboxState, exports: Path, api_url: str
) -> Callable[[Runtime], Awaitable[None]]:
    """Link the sandbox's demo user and a folder destination, once (idempotent)."""

    async def setup(rt: Runtime) -> None:
        user = next(iter(state.accounts.values()))
        info = state.describe_user(user)
        async with rt.sessions() as session, session.begin():
            existing = await AccountRepository(session).by_peloton_user(info["user_id"])
            if existing is None:
                await linking.link(
                    rt,
                    session,
                    linking.LinkRequest(
                        label="Demo rider",
                        refresh_token=info["refresh_tokens"][0]["token"],
                        sync_since=rt.clock() - timedelta(days=60),
                    ),
                )
            found = await session.execute(
                select(Destination).where(Destination.name == DEMO_DESTINATION)
            )
            if found.scalar_one_or_none() is None:
                session.add(
                    Destination(
                        name=DEMO_DESTINATION,
                        kind="directory",
                        config={"root": str(exports)},
                        formats=["tcx", "gpx", "fit", "json"],
                        enabled=True,
                        concurrency=2,
                    )
                )
        typer.echo(
            f"\npelosync demo: a sandbox Peloton is serving the demo rider's workouts.\n"
            f"  files are written to  {exports}\n"
            f"  dashboard             {api_url}/\n"
            f"  admin API             {api_url}/docs\n"
            f"  stop with Ctrl-C\n",
            err=True,
        )

    return setup
