"""The process's shared resources, created and closed in one place.

The app's lifespan, ``pelosync sync --once`` and the tests all open a :class:`Runtime`: the
database engine and session factory, one ``httpx.AsyncClient`` for every outgoing call, the
secret box, the conversion pool, and this worker's identity for leases; and :class:`Singletons`,
the objects of higher layers made once per process (the Strava application, the webhook handlers).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service import __version__
from service.budget.service import SharedBudget
from service.config import Settings
from service.convert.exercises import load_exercise_map
from service.convert.pool import Converter
from service.crypto import SecretBox, load_secret_box
from service.db import create_engine, create_session_factory, utcnow
from service.throttle import FailureThrottle
from service.webhook_http import build_client as build_webhook_client

T = TypeVar("T")


class Singletons:
    """One object per type, made on first use and kept for the process.

    For what a higher layer shares process-wide (Strava's rate limits are shared by every
    account on the app; webhook handlers are reused while their row is unchanged) without this
    layer knowing their types: ``runtime.singletons.get(StravaApp, make)`` is a ``StravaApp``.
    """

    def __init__(self) -> None:
        self._made: dict[type, object] = {}

    def get(self, kind: type[T], make: Callable[[], T]) -> T:
        """The process's ``kind``, made by ``make()`` the first time."""
        made = self._made.get(kind)
        if not isinstance(made, kind):
            made = make()
            self._made[kind] = made
        return made


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    # For user-supplied webhook URLs: no redirects, no proxies from the environment.
    webhook_http: httpx.AsyncClient
    secrets: SecretBox
    converter: Converter
    worker: str
    peloton_slots: asyncio.Semaphore
    # The Peloton request budget of this replica's egress address (shared through the database).
    budget: SharedBudget
    clock: Callable[[], datetime] = utcnow
    # How retry back-offs wait (tests swap in one that does not).
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # How lease keepers wait between renewals: a sleep on ``clock``'s time (tests give their
    # fake clock's, so renewals happen when the test moves the clock). Apart from ``sleep``
    # because a test skipping back-offs must not make the keepers renew in a tight loop.
    keeper_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # Set by the scheduler on every tick; /readyz reads it.
    heartbeat: datetime | None = None
    # Failed sign-ins and wrong API keys by client address (this process's count).
    auth_failures: FailureThrottle = field(default_factory=FailureThrottle)
    # The last scheduler tick that failed ("job: error"), for diagnosis.
    last_tick_error: str | None = None
    singletons: Singletons = field(default_factory=Singletons)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> AsyncIterator[Runtime]:
    """Create every shared resource and close them all on exit, whatever happens."""
    # A bad strength exercises file is a configuration error: refuse to start, not fail later
    # in every strength workout's conversion.
    load_exercise_map(settings.strength_exercises_file)
    box = load_secret_box(settings)
    engine = create_engine(settings.resolved_database_url())
    own_http = http is None
    client = http or httpx.AsyncClient(
        timeout=httpx.Timeout(settings.peloton_timeout_s),
        headers={"User-Agent": f"pelosync/{__version__}"},
        follow_redirects=False,
    )
    webhook_http = build_webhook_client(settings)
    converter = Converter(settings.convert_workers)
    sessions = create_session_factory(engine)
    budget = SharedBudget(
        sessions, egress=settings.peloton_egress, rate=settings.peloton_max_rps, clock=clock
    )
    try:
        runtime = Runtime(
            settings=settings,
            engine=engine,
            sessions=sessions,
            http=client,
            webhook_http=webhook_http,
            secrets=box,
            converter=converter,
            worker=settings.worker_name or default_worker_name(),
            peloton_slots=asyncio.Semaphore(settings.peloton_concurrency),
            budget=budget,
            clock=clock,
            auth_failures=FailureThrottle(settings.auth_failures_per_minute, 60.0),
        )
        # The budget reads the runtime's clock as it is now (tests move it).
        budget.clock = lambda: runtime.clock()
        yield runtime
    finally:
        converter.close()
        await webhook_http.aclose()
        if own_http:
            await client.aclose()
        await engine.dispose()
