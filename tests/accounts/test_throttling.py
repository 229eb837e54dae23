"""Throttling met by one account pauses every poll from the address; the one-item probe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from service.accounts.jobs import PollJob
from service.accounts.models import Account
from service.db import utcnow
from service.peloton.errors import PelotonThrottled
from tests.accounts.conftest import World


def api_requests(world: World) -> list[dict[str, object]]:
    return [e for e in world.sandbox.log.entries if str(e["path"]).startswith("/api/")]


async def backfilled(world: World, job: PollJob, index: int) -> Account:
    account = await world.link(index)
    while (await job.run_once(account.id))[account.id].more:  # type: ignore[union-attr]
        pass
    return account


async def make_due(world: World) -> None:
    async with world.runtime.sessions() as session, session.begin():
        await session.execute(update(Account).values(next_poll_at=world.runtime.clock()))


async def next_poll_at(world: World, account_id: int) -> object:
    async with world.runtime.sessions() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        return account.next_poll_at


async def test_one_account_throttled_pauses_every_poll_until_retry_after(world: World) -> None:
    job = PollJob(world.runtime)
    first = await backfilled(world, job, 0)
    second = await backfilled(world, job, 1)
    await make_due(world)
    world.sandbox.log.clear()
    world.sandbox.faults.add("rate_limit", count=1, status=429, retry_after=30)

    result = (await job.run_once(first.id))[first.id]
    assert result is not None and result.outcome == "rate_limited"
    view = await world.runtime.budget.view()
    assert view.paused_until is not None and view.throttles == 1
    assert timedelta(seconds=25) < view.paused_until - utcnow() <= timedelta(seconds=30)
    assert await next_poll_at(world, first.id) > view.paused_until  # type: ignore[operator]

    # The other account is due, but nothing goes to Peloton while the address is paused.
    assert await job.tick() == []
    with pytest.raises(PelotonThrottled, match=r"Peloton is throttling us, retry at \d{4}-"):
        await job.run_once(second.id)
    assert len(api_requests(world)) == 1  # the throttled probe only

    # After the pause, polls go again, within the budget.
    world.runtime.clock = lambda: utcnow() + timedelta(seconds=31)
    assert await job.tick() == [second.id]
    await job.drain(grace=10)
    assert len(api_requests(world)) == 2
    assert (await world.runtime.budget.view()).requests["background"] >= 1


async def test_a_poll_finding_nothing_new_costs_one_request(world: World) -> None:
    job = PollJob(world.runtime)
    account = await backfilled(world, job, 2)
    await make_due(world)
    world.sandbox.log.clear()
    result = (await job.run_once(account.id))[account.id]
    assert result is not None and result.outcome == "ok" and result.new == 0
    [probe] = api_requests(world)
    assert "limit=1&" in f"{probe['query']}&"

    # Something new: the probe sees it, the listing and the fetches follow.
    world.sandbox.log.clear()
    user = list(world.sandbox.accounts.values())[2]
    world.sandbox.add_workouts(user, kind="cycling_class", count=2)
    await make_due(world)
    result = (await job.run_once(account.id))[account.id]
    assert result is not None and result.new == 2
    assert len(api_requests(world)) == 2 + 2 * 3  # probe, listing, 3 per workout
