"""A rig for fault tests: a sandbox Peloton, a runtime on a fake clock, helpers to read back.

Only time is faked (``runtime.clock``), so retry schedules are walked through without waiting;
Peloton, webhooks and folders are real (HTTP on loopback, files under ``tmp_path``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.accounts import linking as accounts
from service.accounts.jobs import PollJob
from service.accounts.models import Account, SyncRun
from service.deliveries.jobs import DeliveryJob
from service.deliveries.models import Delivery, DeliveryAttempt
from service.destinations.models import Destination
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.runtime import Runtime, open_runtime
from service.workouts.models import Workout
from tests.accounts.conftest import LONG_AGO
from tests.conftest import make_settings
from tests.support.clock import FakeClock, no_wait


def summary(name: str, *, faults: int, survived: int, lost: int) -> None:
    """The one line each test prints, so its figures can be quoted."""
    print(f"reliability: {name}: faults={faults} survived={survived} lost={lost}")


@dataclass
class Rig:
    sandbox: SandboxState
    url: str
    runtime: Runtime
    clock: FakeClock
    job: DeliveryJob

    def refresh_token(self, index: int = 0) -> str:
        user = list(self.sandbox.accounts.values())[index]
        return str(self.sandbox.describe_user(user)["refresh_tokens"][0]["token"])

    def expected_ids(self, index: int = 0) -> set[str]:
        user = list(self.sandbox.accounts.values())[index]
        return {w.workout_id for w in self.sandbox.workouts(user) if not w.in_progress}

    async def link(self, index: int = 0) -> Account:
        request = accounts.LinkRequest(refresh_token=self.refresh_token(index), sync_since=LONG_AGO)
        async with self.runtime.sessions() as session, session.begin():
            return await accounts.link(self.runtime, session, request)

    async def poll(self, account_id: int) -> Any:
        result = (await PollJob(self.runtime).run_once(account_id))[account_id]
        assert result is not None
        return result

    async def poll_until_done(self, account_id: int) -> None:
        for _ in range(20):
            result = await self.poll(account_id)
            assert result.outcome == "ok", result
            if not result.more:
                return
        raise AssertionError("the poll never finished")

    async def add(self, destination: Destination) -> int:
        async with self.runtime.sessions() as session, session.begin():
            session.add(destination)
            await session.flush()
            return destination.id

    async def account(self, account_id: int) -> Account:
        async with self.runtime.sessions() as session:
            row = await session.get(Account, account_id)
        assert row is not None
        return row

    async def rows(self, model: Any) -> list[Any]:
        stmt = select(model).order_by(model.id)
        async with self.runtime.sessions() as session:
            return list((await session.execute(stmt)).scalars())

    async def workouts(self) -> list[Workout]:
        return await self.rows(Workout)

    async def deliveries(self) -> list[Delivery]:
        return await self.rows(Delivery)

    async def attempts(self) -> list[DeliveryAttempt]:
        return await self.rows(DeliveryAttempt)

    async def runs(self) -> list[SyncRun]:
        return await self.rows(SyncRun)


@asynccontextmanager
async def open_rig(
    tmp_path: Path, database_url: str, *, workouts: int = 3, **overrides: Any
) -> AsyncIterator[Rig]:
    """One sandbox user with ``workouts`` workouts; the clock starts ahead of real time so rows
    stamped with the real time are due at once."""
    state = SandboxState(SandboxConfig(seed=5, users=1, workouts=workouts, anchor=int(time.time())))
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10))
    async with AsyncExitStack() as stack, run_sandbox(state) as url:
        values: dict[str, Any] = {
            "peloton_api_url": url,
            "peloton_auth_url": url,
            "peloton_every_n": 5,
            "webhook_allow_private": True,
            "webhook_timeout_s": 2.0,
            "webhook_inline_max_bytes": 4 * 1024 * 1024,
            **overrides,
        }
        settings = make_settings(tmp_path, database_url, **values)
        rt = await stack.enter_async_context(open_runtime(settings, clock=clock))
        rt.sleep = no_wait
        rig = Rig(state, url, rt, clock, DeliveryJob(rt))
        try:
            yield rig
        finally:
            await rig.job.drain(grace=5)


@pytest.fixture
async def rig(tmp_path: Path, database_url: str) -> AsyncIterator[Rig]:
    async with open_rig(tmp_path, database_url) as made:
        yield made
