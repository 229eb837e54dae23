"""The group-commit recorder: outcomes share transactions and statements, a lost lease writes
nothing, and a broken write fails alone. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.models import Account
from service.deliveries.models import Delivery, DeliveryAttempt, DeliveryState
from service.deliveries.recorder import Outcome, Recorder
from service.destinations.models import Destination
from service.runtime import Runtime
from service.workouts.models import Workout

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OWNER = "worker-a"


async def leased_deliveries(runtime: Runtime, count: int) -> tuple[int, list[int]]:
    """A destination and ``count`` deliveries leased to :data:`OWNER`."""
    async with runtime.sessions() as session, session.begin():
        account = Account(
            label="a", peloton_user_id="u1", auth_method="token", sync_since=NOW, next_poll_at=NOW
        )
        destination = Destination(name="d", kind="directory", config={}, formats=["tcx"])
        session.add_all([account, destination])
        await session.flush()
        deliveries = []
        for i in range(count):
            workout = Workout(
                account_id=account.id,
                peloton_workout_id=f"w{i}",
                discipline="cycling",
                title="ride",
                started_at=NOW,
                peloton_status="COMPLETE",
                raw_workout={},
                raw_performance_graph={},
            )
            session.add(workout)
            await session.flush()
            delivery = Delivery(
                workout_id=workout.id,
                destination_id=destination.id,
                format="tcx",
                message_id=f"msg_{i}",
                lease_owner=OWNER,
                lease_expires_at=NOW + timedelta(minutes=5),
            )
            session.add(delivery)
            await session.flush()
            deliveries.append(delivery.id)
        return destination.id, deliveries


def succeeded(delivery_id: int, destination_id: int, owner: str = OWNER, **kw: object) -> Outcome:
    return Outcome(
        delivery_id=delivery_id,
        owner=owner,
        values={"state": DeliveryState.SUCCEEDED, "attempts": 1, "delivered_at": NOW},
        attempt={
            "delivery_id": delivery_id,
            "number": 1,
            "worker": owner,
            "started_at": NOW,
            "duration_ms": 5,
            "outcome": "succeeded",
            "status_code": 200,
        },
        destination_id=destination_id,
        healthy_at=NOW,
        **kw,  # type: ignore[arg-type]
    )


async def table(runtime: Runtime) -> dict[int, tuple[str, str | None, int]]:
    """delivery id: (state, lease owner, attempt rows)."""
    async with runtime.sessions() as session:
        deliveries = (await session.execute(select(Delivery))).scalars().all()
        attempts = (await session.execute(select(DeliveryAttempt))).scalars().all()
    return {
        d.id: (d.state, d.lease_owner, sum(a.delivery_id == d.id for a in attempts))
        for d in deliveries
    }


async def test_outcomes_are_written_together_and_committed_on_return(runtime: Runtime) -> None:
    destination_id, ids = await leased_deliveries(runtime, 3)
    recorder = Recorder(runtime.sessions)
    held = await asyncio.gather(*(recorder.record(succeeded(i, destination_id)) for i in ids))
    assert held == [True, True, True]
    # Visible to any other session at once: states written, leases released, one attempt each.
    assert await table(runtime) == dict.fromkeys(ids, (DeliveryState.SUCCEEDED, None, 1))
    async with runtime.sessions() as session:
        destination = await session.get(Destination, destination_id)
    assert destination is not None and destination.last_success_at == NOW


async def test_a_lost_lease_writes_nothing(runtime: Runtime) -> None:
    destination_id, (mine, theirs) = await leased_deliveries(runtime, 2)
    recorder = Recorder(runtime.sessions)
    results = await asyncio.gather(
        recorder.record(succeeded(mine, destination_id)),
        recorder.record(succeeded(theirs, destination_id, owner="worker-b")),
    )
    assert results == [True, False]
    assert await table(runtime) == {
        mine: (DeliveryState.SUCCEEDED, None, 1),
        theirs: (DeliveryState.PENDING, OWNER, 0),  # untouched: worker-a's lease stands
    }


async def test_a_broken_write_fails_alone(runtime: Runtime) -> None:
    destination_id, ids = await leased_deliveries(runtime, 3)

    async def broken(_session: AsyncSession) -> None:
        raise ValueError("this upkeep is broken")

    recorder = Recorder(runtime.sessions)
    results = await asyncio.gather(
        recorder.record(succeeded(ids[0], destination_id)),
        recorder.record(succeeded(ids[1], destination_id, then=broken)),
        recorder.record(succeeded(ids[2], destination_id)),
        return_exceptions=True,
    )
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], ValueError)
    assert await table(runtime) == {
        ids[0]: (DeliveryState.SUCCEEDED, None, 1),
        ids[1]: (DeliveryState.PENDING, OWNER, 0),  # rolled back: the lease lapses, retried
        ids[2]: (DeliveryState.SUCCEEDED, None, 1),
    }
    await recorder.idle()


async def test_a_cancelled_caller_still_gets_its_outcome_written(runtime: Runtime) -> None:
    destination_id, (delivery_id,) = await leased_deliveries(runtime, 1)
    recorder = Recorder(runtime.sessions)
    caller = asyncio.create_task(recorder.record(succeeded(delivery_id, destination_id)))
    await asyncio.sleep(0)  # queued
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await recorder.idle()
    assert await table(runtime) == {delivery_id: (DeliveryState.SUCCEEDED, None, 1)}
