"""Three replicas on one database keep to one request budget, and one throttling pauses all.

The replicas run in this event loop, each with its own runtime (engine, pool, budget object)
and poll job, as in :mod:`tests.accounts.test_replicas`; the sandbox records when each
request arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.accounts.jobs import PollJob
from service.accounts.models import SyncRun
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.runtime import Runtime
from service.workouts.models import Workout
from tests.accounts.test_replicas import link_all, replica_runtime, set_accounts

RATE = 5.0
USERS = 8
WORKOUTS = 2


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    state = SandboxState(
        SandboxConfig(seed=31, users=USERS, workouts=WORKOUTS, anchor=int(time.time()))
    )
    async with run_sandbox(state) as url:
        yield state, url


def arrivals(state: SandboxState) -> list[float]:
    """When each Peloton API request reached the sandbox (tokens are Auth0's: not budgeted)."""
    return sorted(
        float(e["time"]) - float(e["duration_ms"]) / 1000
        for e in state.log.entries
        if str(e["path"]).startswith("/api/")
    )


@contextlib.asynccontextmanager
async def three_replicas(
    tmp_path: Path, database_url: str, state: SandboxState, url: str
) -> AsyncIterator[list[Runtime]]:
    """Three replicas with every sandbox user linked, and the sandbox's log cleared."""
    async with contextlib.AsyncExitStack() as stack:
        runtimes = [
            await stack.enter_async_context(
                replica_runtime(
                    tmp_path, database_url, url, f"r{i}", peloton_max_rps=RATE, sync_concurrency=2
                )
            )
            for i in range(3)
        ]
        await link_all(runtimes[0], state)
        state.log.clear()
        yield runtimes


async def stored(rt: Runtime) -> int:
    async with rt.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Workout))).scalar_one())


async def tick_together(
    runtimes: list[Runtime], done: Callable[[], Awaitable[bool]], within: float
) -> bool:
    """Every replica's poll job ticks until ``done()`` or ``within`` seconds; then they drain.
    Whether ``done()`` came true."""
    jobs = [PollJob(rt) for rt in runtimes]
    started = time.monotonic()
    finished = False
    while not finished and time.monotonic() - started < within:
        await asyncio.gather(*(job.tick() for job in jobs))
        await asyncio.sleep(0.1)
        finished = await done()
    # Polls in flight wait their turn in the budget: let them finish, never cancel them.
    await asyncio.gather(*(job.drain(grace=60) for job in jobs))
    return finished


async def test_three_replicas_never_exceed_the_budget_together(
    tmp_path: Path, database_url: str, sandbox: tuple[SandboxState, str]
) -> None:
    state, url = sandbox
    async with three_replicas(tmp_path, database_url, state, url) as runtimes:

        async def all_stored() -> bool:
            return await stored(runtimes[0]) == USERS * WORKOUTS

        assert await tick_together(runtimes, all_stored, within=90), "not synced in time"
        async with runtimes[0].sessions() as session:
            workers = set((await session.execute(select(SyncRun.worker))).scalars())
        # While the replicas are open: a closed runtime's engine would open a new connection
        # (and pool) that nothing closes any more.
        view = await runtimes[1].budget.view()
    assert len(workers) >= 2  # the polls really were shared out

    times = arrivals(state)
    assert len(times) >= USERS * (1 + 2 * WORKOUTS)  # a listing, a workout and its graph
    # At most 2 x RATE requests in any two seconds, give or take two: the slots are exactly
    # 1/RATE apart, but the sandbox shares this event loop, and a request it delays (it is
    # generating a workout) reaches it together with the next one.
    span = int(2 * RATE) + 2
    for i in range(len(times) - span):
        assert times[i + span] - times[i] >= 2.0 - 0.05, times[i : i + span + 1]
    overall = (len(times) - 1) / (times[-1] - times[0])
    assert overall <= RATE * 1.02
    assert view.requests["background"] >= len(times)  # slots granted (a stalled one is lost)


async def test_a_throttled_request_on_one_replica_pauses_the_others(
    tmp_path: Path, database_url: str, sandbox: tuple[SandboxState, str]
) -> None:
    state, url = sandbox
    async with three_replicas(tmp_path, database_url, state, url) as runtimes:
        state.faults.add("rate_limit", count=1, status=429, retry_after=3)

        async def never() -> bool:
            return False

        await tick_together(runtimes, never, within=6)
        await set_accounts(runtimes[0], paused=True)
    entries = [e for e in state.log.entries if str(e["path"]).startswith("/api/")]
    throttled_at = next(float(e["time"]) for e in entries if e["status"] == 429)
    after = [
        float(e["time"]) - float(e["duration_ms"]) / 1000
        for e in entries
        if float(e["time"]) > throttled_at
    ]
    # Requests already granted a slot may still leave within the queue (one second); after
    # that nothing until Retry-After, from any replica.
    quiet = [t for t in after if throttled_at + 1.1 < t < throttled_at + 3 - 0.1]
    assert quiet == []
    assert any(t >= throttled_at + 2.9 for t in after)  # and requests resume after it
