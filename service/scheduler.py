"""The in-process scheduler (APScheduler 3, ``AsyncIOScheduler``).

Every replica ticks; the database decides who does what (see :mod:`service.leases`). Each job
runs with ``max_instances=1`` and ``coalesce=True``, errors in a tick are logged and the next
tick tries again, and every tick refreshes the heartbeat that ``/readyz`` checks.

A tick runs in a task of its own, shielded from APScheduler: its shutdown cancels the jobs in
flight without waiting for them, so a tick cut short could still be returning its database
connection after the runtime had closed the engine (to the disposed pool, where it was never
closed). :meth:`Scheduler.drain` waits for the ticks in flight instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from service.runtime import Runtime

log = structlog.get_logger(__name__)

Tick = Callable[[], Awaitable[object]]


class Scheduler:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._jobs: list[tuple[str, Tick, float]] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    def add(self, name: str, tick: Tick, every: float) -> None:
        self._jobs.append((name, tick, every))

    def start(self) -> None:
        """Start ticking (call from inside the running event loop)."""
        now = self.rt.clock()
        for name, tick, every in self._jobs:
            self._scheduler.add_job(
                self._guarded(name, tick),
                "interval",
                seconds=every,
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(int(every), 1),
                next_run_time=now + timedelta(milliseconds=100),
            )
        self._scheduler.start()
        log.info("scheduler.started", worker=self.rt.worker, jobs=[j[0] for j in self._jobs])

    def stop(self) -> None:
        """Stop starting ticks; the ticks in flight go on (:meth:`drain` waits for them), and
        the work they started is drained by its job."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def drain(self, grace: float) -> None:
        """Let the ticks in flight finish for up to ``grace`` seconds, then cancel them; return
        once none is running (call after :meth:`stop`, before the runtime closes)."""
        if not self._in_flight:
            return
        _, pending = await asyncio.wait(set(self._in_flight), timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _guarded(self, name: str, tick: Tick) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            task = asyncio.create_task(guarded(), name=f"tick-{name}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            # APScheduler's shutdown cancels this wait, not the tick.
            await asyncio.shield(task)

        async def guarded() -> None:
            try:
                await tick()
                self.rt.heartbeat = self.rt.clock()
            except Exception as exc:
                # The database may be down: readiness reports it; the next tick retries.
                self.rt.last_tick_error = f"{name}: {type(exc).__name__}: {exc}"
                log.warning("scheduler.tick.failed", job=name, error=type(exc).__name__)

        return run
