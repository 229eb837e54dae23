"""The delivery engine end to end: a sandbox Peloton, a runtime on a fake clock, verifying
webhook receivers on loopback, and helpers to read back deliveries and attempts.

Workouts come in the way production gets them (``PollJob`` against the sandbox over HTTP) and
leave the way production sends them (``DeliveryJob`` over real HTTP or into a real folder).
Only time is faked: ``runtime.clock`` is a :class:`FakeClock` the tests move forward to walk
through retry schedules and lease renewals, while the webhook signatures keep using the real
time (receivers check it against theirs).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.accounts import linking as accounts
from service.accounts.jobs import PollJob
from service.accounts.models import Account
from service.deliveries.engine import DeliveryRunner
from service.deliveries.jobs import DeliveryJob
from service.deliveries.models import Delivery, DeliveryAttempt
from service.destinations.kinds.webhook import WebhookConfig, generate_secret
from service.destinations.models import Destination
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.runtime import Runtime, open_runtime
from service.workouts.models import Workout
from tests.conftest import make_settings
from tests.destinations.receiver import Answer, Receiver
from tests.support.clock import FakeClock, no_wait

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class FixedRandom(random.Random):
    """A random source for the jitter that always answers the same point of the range."""

    def __init__(self, at: float) -> None:
        super().__init__(0)
        self.at = at

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.at


@dataclass
class Engine:
    sandbox: SandboxState
    runtime: Runtime
    clock: FakeClock
    job: DeliveryJob
    stack: AsyncExitStack
    receivers: list[Receiver] = field(default_factory=list)

    # --- setting up ---------------------------------------------------------------------

    def refresh_token(self, index: int = 0) -> str:
        """The refresh token the sandbox currently accepts for user ``index``."""
        user = list(self.sandbox.accounts.values())[index]
        return str(self.sandbox.describe_user(user)["refresh_tokens"][0]["token"])

    async def link_and_poll(self, index: int = 0) -> Account:
        """Link sandbox user ``index`` and poll until everything is stored (like the scheduler)."""
        request = accounts.LinkRequest(refresh_token=self.refresh_token(index), sync_since=LONG_AGO)
        async with self.runtime.sessions() as session, session.begin():
            account = await accounts.link(self.runtime, session, request)
        job = PollJob(self.runtime)
        for _ in range(10):
            result = (await job.run_once(account.id))[account.id]
            assert result is not None and result.outcome == "ok", result
            if not result.more:
                return account
        raise AssertionError("the poll never finished")

    async def receiver(self, secret: str, default: Answer | None = None) -> Receiver:
        """A verifying receiver, closed at the end (asserting every request verified)."""
        server = await Receiver([secret]).start()
        if default is not None:
            server.default = default
        self.receivers.append(server)
        self.stack.push_async_callback(server.close)
        return server

    async def webhook(
        self,
        url: str,
        secret: str,
        *,
        formats: tuple[str, ...] = ("json",),
        concurrency: int = 2,
        name: str = "hook",
    ) -> Destination:
        config, secrets = WebhookConfig(url=url, secret=secret).split()  # type: ignore[arg-type]
        return await self.add(
            Destination(
                name=name,
                kind="webhook",
                config=config,
                secrets_encrypted=self.runtime.secrets.encrypt_json(secrets),
                formats=list(formats),
                concurrency=concurrency,
                enabled=True,
            )
        )

    async def folder(self, root: Path, *, formats: tuple[str, ...] = ("tcx",)) -> Destination:
        return await self.add(
            Destination(
                name="folder",
                kind="directory",
                config={"root": str(root), "template": "{account}/{workout_id}.{ext}"},
                formats=list(formats),
                concurrency=2,
                enabled=True,
            )
        )

    async def add(self, destination: Destination) -> Destination:
        async with self.runtime.sessions() as session, session.begin():
            session.add(destination)
        return destination

    async def update_destination(self, destination_id: int, **values: Any) -> None:
        async with self.runtime.sessions() as session, session.begin():
            row = await session.get(Destination, destination_id)
            assert row is not None
            for key, value in values.items():
                setattr(row, key, value)

    # --- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver everything due now (ticking like the scheduler), then return."""
        await self.job.run_until_idle()

    async def run_at(self, when: datetime) -> None:
        self.clock.set(when)
        await self.run()

    # --- reading back -------------------------------------------------------------------

    async def destination(self, destination_id: int) -> Destination:
        async with self.runtime.sessions() as session:
            row = await session.get(Destination, destination_id)
        assert row is not None
        return row

    async def deliveries(self, destination_id: int | None = None) -> list[Delivery]:
        stmt = select(Delivery).order_by(Delivery.id)
        if destination_id is not None:
            stmt = stmt.where(Delivery.destination_id == destination_id)
        async with self.runtime.sessions() as session:
            return list((await session.execute(stmt)).scalars())

    async def delivery(self, delivery_id: int) -> Delivery:
        async with self.runtime.sessions() as session:
            row = await session.get(Delivery, delivery_id)
        assert row is not None
        return row

    async def attempts(self, delivery_id: int | None = None) -> list[DeliveryAttempt]:
        stmt = select(DeliveryAttempt).order_by(DeliveryAttempt.id)
        if delivery_id is not None:
            stmt = stmt.where(DeliveryAttempt.delivery_id == delivery_id)
        async with self.runtime.sessions() as session:
            return list((await session.execute(stmt)).scalars())

    async def workouts(self) -> dict[int, Workout]:
        async with self.runtime.sessions() as session:
            rows = (await session.execute(select(Workout))).scalars()
            return {w.id: w for w in rows}


@asynccontextmanager
async def open_engine(
    tmp_path: Path,
    database_url: str,
    *,
    workouts: int = 2,
    jitter_at: float | None = None,
    **overrides: Any,
) -> AsyncIterator[Engine]:
    """A sandbox with one user of ``workouts`` workouts, and a runtime on a fake clock.

    The clock starts a little ahead of the real time, so deliveries created now (stamped with
    the real time) are due at once. ``jitter_at`` pins the retry jitter (0 low, 1 high).
    """
    state = SandboxState(SandboxConfig(seed=7, users=1, workouts=workouts, anchor=int(time.time())))
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10))
    async with AsyncExitStack() as stack, run_sandbox(state) as url:
        values: dict[str, Any] = {
            "peloton_api_url": url,
            "peloton_auth_url": url,
            "webhook_allow_private": True,
            "webhook_timeout_s": 2.0,
            **overrides,
        }
        settings = make_settings(tmp_path, database_url, **values)
        rt = await stack.enter_async_context(open_runtime(settings, clock=clock))
        rt.sleep = no_wait
        rt.keeper_sleep = clock.sleep  # lease renewals happen when the test moves the clock
        runner = DeliveryRunner(rt, rng=None if jitter_at is None else FixedRandom(jitter_at))
        engine = Engine(state, rt, clock, DeliveryJob(rt, runner), stack)
        try:
            yield engine
        finally:
            await engine.job.drain(grace=5)  # nothing may outlive the runtime, even on failure
        for receiver in engine.receivers:
            assert not receiver.unverified(), "every request must verify with standardwebhooks"


@pytest.fixture
async def engine(tmp_path: Path, database_url: str) -> AsyncIterator[Engine]:
    async with open_engine(tmp_path, database_url) as world:
        yield world


@pytest.fixture
def secret() -> str:
    return generate_secret()
