"""Stopping the scheduler leaves no tick running after the runtime closes.

APScheduler cancels the ticks in flight when it shuts down and does not wait for them: a
cancelled tick still returning its session's connection after ``engine.dispose()`` gave it to
the disposed pool, where it was never closed (an aiosqlite connection collected later, in
whichever test ran then, "was deleted before being closed").
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from pathlib import Path

from sqlalchemy import text

from service.runtime import open_runtime
from service.scheduler import Scheduler
from tests.conftest import make_settings


def _unclosed_connections() -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


async def _stop_during_tick(tmp_path: Path, *, holds_for: float, grace: float) -> list[str]:
    """Start a tick that holds a connection for ``holds_for`` seconds, stop and drain the
    scheduler with ``grace`` while it does, close the runtime; what the tick got to do."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ticks.db'}"
    inside = asyncio.Event()
    done: list[str] = []
    async with open_runtime(make_settings(tmp_path, url)) as rt:

        async def tick() -> None:
            try:
                async with rt.sessions() as session:
                    await session.execute(text("select 1"))
                    inside.set()
                    await asyncio.sleep(holds_for)
                done.append("finished")
            except asyncio.CancelledError:
                done.append("cancelled")
                raise

        ticker = Scheduler(rt)
        ticker.add("probe", tick, 60)
        ticker.start()
        await asyncio.wait_for(inside.wait(), 10)
        ticker.stop()
        await ticker.drain(grace)
    await asyncio.sleep(0.5)  # a tick still running would have returned its connection by now
    return done


async def test_stopping_lets_the_tick_in_flight_finish_before_the_runtime_closes(
    tmp_path: Path,
) -> None:
    done = await _stop_during_tick(tmp_path, holds_for=0.3, grace=5)
    assert _unclosed_connections() == []
    assert done == ["finished"]


async def test_a_tick_past_the_grace_is_cancelled_and_waited_for(tmp_path: Path) -> None:
    started = time.monotonic()
    done = await _stop_during_tick(tmp_path, holds_for=60, grace=0.2)
    assert time.monotonic() - started < 10
    assert _unclosed_connections() == []
    assert done == ["cancelled"]
