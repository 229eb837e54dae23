"""The FastAPI application and its lifespan: resources, migrations, scheduler."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import structlog
from fastapi import FastAPI

from service import __version__
from service.accounts.jobs import PollJob
from service.api import install_api
from service.config import Settings, get_settings
from service.deliveries.jobs import DeliveryJob
from service.deliveries.retry import next_attempt_delay
from service.events.jobs import EventJob, WatchJob
from service.migrate import check_current, upgrade
from service.ops.router import router as ops_router
from service.problems import install_problem_handlers
from service.runtime import Runtime, open_runtime
from service.scheduler import Scheduler
from service.web import install_web

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_S = 20.0
#: How often expiring credentials and cleared conditions are looked for (service/events).
WATCH_EVERY_S = 300.0


def create_app(
    settings: Settings | None = None,
    *,
    migrate: bool = True,
    scheduler: bool = True,
    runtime: Runtime | None = None,
    on_started: Callable[[Runtime], Awaitable[None]] | None = None,
) -> FastAPI:
    """The app. ``migrate`` applies migrations at start (else an outdated schema refuses to
    start); ``scheduler`` runs polling and deliveries in this process; ``runtime`` lets tests
    pass resources they own."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _runtime(settings, runtime) as rt:
            if migrate:
                await upgrade(rt.engine)
            else:
                await check_current(rt.engine)
            if on_started is not None:
                await on_started(rt)
            app.state.runtime = rt
            app.state.scheduler_enabled = scheduler
            poll_job = PollJob(rt)
            delivery_job = DeliveryJob(rt)
            app.state.poll_job = poll_job
            app.state.delivery_job = delivery_job
            ticker = Scheduler(rt)
            ticker.add("accounts.poll", poll_job.tick, settings.tick_seconds)
            ticker.add("deliveries.send", delivery_job.tick, max(settings.tick_seconds / 2, 0.2))
            event_job = EventJob(rt, next_attempt_delay)
            ticker.add("events.send", event_job.tick, settings.tick_seconds)
            ticker.add("events.watch", WatchJob(rt).tick, WATCH_EVERY_S)
            if scheduler:
                ticker.start()
            log.info("service.started", worker=rt.worker, version=__version__)
            try:
                with _startup_heap_frozen():
                    yield
            finally:
                ticker.stop()
                # Work in flight finishes (or its lease lapses and another replica takes it);
                # nothing may still hold a connection once the runtime closes the engine.
                await asyncio.gather(
                    ticker.drain(SHUTDOWN_GRACE_S),
                    poll_job.drain(SHUTDOWN_GRACE_S),
                    delivery_job.drain(SHUTDOWN_GRACE_S),
                    event_job.drain(SHUTDOWN_GRACE_S),
                )
                log.info("service.stopped", worker=rt.worker)

    app = FastAPI(
        title="pelosync",
        version=__version__,
        description="Admin API of pelosync: Peloton workouts to webhooks, files and services.",
        lifespan=lifespan,
        # Served by service.ops.docs from local assets (FastAPI's own load them from a CDN).
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    app.include_router(ops_router)
    install_api(app, settings)
    install_web(app)
    return app


@contextmanager
def _startup_heap_frozen() -> Iterator[None]:
    """Performance machinery (benchmarks/api.py, its p99): what startup made (modules, routes,
    schemas, the ORM's registry) lives as long as the process; moved out of the collector's
    reach (``gc.freeze``), a full collection no longer walks it (about 100 ms, a pause for
    every request in flight, every few seconds under load)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@asynccontextmanager
async def _runtime(settings: Settings, given: Runtime | None) -> AsyncIterator[Runtime]:
    if given is not None:
        yield given
        return
    async with open_runtime(settings) as rt:
        yield rt
