"""A workout delivered once is never sent again on its own (issue 19: no duplicates), and a
workout Peloton imported from another service goes nowhere unless its account includes them.

End to end: workouts come from the sandbox over loopback, go out to a verifying webhook
receiver; the receiver then "loses" them (forgets them and answers 404 to anything), and the
workouts come back every way they can: a re-sync (backfill walking back again), the account
deleted and linked again. Nothing reaches the receiver until a replay, asked for by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from service.accounts import linking as accounts
from service.accounts import service as accounts_service
from service.accounts.jobs import PollJob
from service.accounts.models import Account
from service.deliveries import bulk
from service.deliveries.models import DeliveryState, SentWorkout
from tests.deliveries.conftest import LONG_AGO, Engine
from tests.destinations.receiver import Answer


async def _poll_all(engine: Engine, account_id: int) -> None:
    job = PollJob(engine.runtime)
    for _ in range(10):
        result = (await job.run_once(account_id))[account_id]
        assert result is not None and result.outcome == "ok", result
        if not result.more:
            return
    raise AssertionError("the poll never finished")


async def _relink(engine: Engine, account_id: int) -> Account:
    async with engine.runtime.sessions() as session, session.begin():
        await accounts_service.delete(session, account_id)
    request = accounts.LinkRequest(refresh_token=engine.refresh_token(), sync_since=LONG_AGO)
    async with engine.runtime.sessions() as session, session.begin():
        account = await accounts.link(engine.runtime, session, request)
    await _poll_all(engine, account.id)
    return account


async def test_a_delivered_workout_is_never_sent_again_unless_replayed(
    engine: Engine, secret: str
) -> None:
    receiver = await engine.receiver(secret)
    destination = await engine.webhook(receiver.url(), secret)
    account = await engine.link_and_poll()
    await engine.run()
    assert len(receiver.requests) == 2  # the sandbox user's two workouts
    delivered = await engine.deliveries()
    assert {d.state for d in delivered} == {DeliveryState.SUCCEEDED}

    # The receiver loses them: it forgets, and says 404 to anything from now on.
    receiver.requests.clear()
    receiver.default = Answer(status=404, body=b"no such activity")

    # A re-sync: the backfill walks back over the same workouts again.
    async with engine.runtime.sessions() as session, session.begin():
        await accounts_service.update(
            engine.runtime, session, account.id, {"sync_since": LONG_AGO - timedelta(days=1)}
        )
    await _poll_all(engine, account.id)
    await engine.run()
    assert receiver.requests == []
    assert [(d.id, d.state) for d in await engine.deliveries()] == [
        (d.id, DeliveryState.SUCCEEDED) for d in delivered
    ]

    # The account deleted and linked again: the workouts are fetched anew, not sent anew.
    account = await _relink(engine, account.id)
    workouts = await engine.workouts()
    assert len(workouts) == 2 and all(w.account_id == account.id for w in workouts.values())
    await engine.run()
    assert receiver.requests == []
    assert await engine.deliveries() == []
    async with engine.runtime.sessions() as session:
        kept = (await session.execute(select(SentWorkout))).scalars().all()
    assert {(s.peloton_workout_id, s.destination_id, s.format) for s in kept} == {
        (w.peloton_workout_id, destination.id, "json") for w in workouts.values()
    }

    # Asked for by hand: a replay sends them again (the receiver has them back).
    receiver.default = Answer()
    async with engine.runtime.sessions() as session, session.begin():
        queued = await bulk.replay(
            session,
            destination.id,
            start=datetime(2000, 1, 1, tzinfo=UTC),
            end=engine.clock() + timedelta(days=1),
            now=engine.clock(),
        )
    assert queued == 2
    await engine.run()
    assert len(receiver.requests) == 2


async def test_only_what_was_delivered_is_kept_from_a_deleted_account(
    engine: Engine, secret: str
) -> None:
    receiver = await engine.receiver(secret)
    # One workout gets through, the other is refused (and waits for its retry).
    receiver.answers = [Answer(status=200), Answer(status=400, body=b"no")]
    destination = await engine.webhook(receiver.url(), secret, concurrency=1)
    account = await engine.link_and_poll()
    await engine.run()
    states = sorted(d.state for d in await engine.deliveries())
    assert states == [DeliveryState.PENDING, DeliveryState.SUCCEEDED]
    failed_workout = next(
        d.workout_id for d in await engine.deliveries() if d.state != DeliveryState.SUCCEEDED
    )
    failed_peloton_id = (await engine.workouts())[failed_workout].peloton_workout_id

    await _relink(engine, account.id)
    # The one never delivered is created again; the delivered one is not.
    again = await engine.deliveries(destination.id)
    workouts = await engine.workouts()
    assert [workouts[d.workout_id].peloton_workout_id for d in again] == [failed_peloton_id]
