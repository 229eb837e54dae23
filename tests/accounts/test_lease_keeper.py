"""A long poll renews its account's lease, paced by the runtime's clock (``keeper_sleep``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from service.accounts.jobs import PollJob
from service.accounts.models import Account
from service.accounts.repository import AccountRepository
from tests.accounts.conftest import World
from tests.support.clock import FakeClock
from tests.support.waiting import wait_until


async def lease_of(world: World, account_id: int) -> datetime | None:
    async with world.runtime.sessions() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        return account.lease_expires_at


async def test_a_long_poll_renews_its_lease_so_no_other_worker_takes_it(world: World) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10))
    world.runtime.clock = clock
    world.runtime.keeper_sleep = clock.sleep
    account = await world.link()
    job = PollJob(world.runtime)
    lease = job.lease  # renewed every third of it
    release = asyncio.Event()

    async def slow_poll(account_id: int, **_: Any) -> None:
        await release.wait()

    job.poller.poll = slow_poll  # type: ignore[method-assign,assignment]
    assert await job.sync_now(account.id)
    try:
        assert await lease_of(world, account.id) == clock() + lease
        now = clock.advance(lease.total_seconds() * 0.9)  # the first lease almost gone

        async def renewed() -> bool:
            return await lease_of(world, account.id) == now + lease

        # Well before a real-time keeper would wake (a third of 30 s).
        await wait_until(renewed, "the lease renewal", 5, 0.02)
        async with world.runtime.sessions() as session, session.begin():
            taken = await AccountRepository(session).claim_due(
                owner="another-replica", now=now + lease * 0.5, lease=lease, limit=5
            )
        assert taken == ([], 0)  # past the first lease, within the renewal
    finally:
        release.set()
        await job.drain(grace=5)
    assert not job.running
