"""Engine corner cases found while testing it end to end: concurrent attempts of one
destination recording their outcomes, and attempts that crash with an unexpected error."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from service.convert.pool import RawBundle, Rendered
from service.deliveries.models import DeliveryState
from service.deliveries.repository import DeliveryRepository
from service.destinations.kinds.webhook import generate_secret
from tests.deliveries.conftest import Engine, open_engine
from tests.destinations.receiver import Answer
from tests.support.waiting import wait_until


async def test_a_failure_recorded_after_a_concurrent_success_starts_a_new_failing_run(
    engine: Engine, secret: str
) -> None:
    receiver = await engine.receiver(secret)
    destination = await engine.webhook(receiver.url(), secret, concurrency=2)
    await engine.link_and_poll()
    long_ago = engine.clock.now - timedelta(days=3)
    await engine.update_destination(destination.id, failing_since=long_ago)
    # Both attempts start while the destination is failing; the fast one succeeds (a healthy
    # destination again), the slow one fails after it: a new run of failures starts now.
    receiver.answers = [Answer(status=500, delay_s=0.3), Answer(status=200)]
    await engine.run()
    states = sorted(d.state for d in await engine.deliveries())
    assert states == [DeliveryState.PENDING, DeliveryState.SUCCEEDED]
    stored = await engine.destination(destination.id)
    assert stored.last_success_at == engine.clock.now
    # Not the stale start of the old run: that would sit before last_success_at for good and
    # the five-day auto-disable could never fire again.
    assert stored.failing_since == engine.clock.now


async def test_an_unexpected_crash_is_recorded_and_retried_on_the_schedule(
    engine: Engine, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await engine.receiver(secret)
    await engine.webhook(receiver.url(), secret, concurrency=1)
    await engine.link_and_poll()
    render_raw = engine.runtime.converter.render_raw
    crashes = []

    async def crashing_once(raw: RawBundle, fmt: str, device: Any = None) -> Rendered:
        if not crashes:
            crashes.append(fmt)
            raise RuntimeError("the conversion pool broke")  # e.g. BrokenProcessPool
        return await render_raw(raw, fmt, device)

    monkeypatch.setattr(engine.runtime.converter, "render_raw", crashing_once)
    await engine.run()
    crashed = next(d for d in await engine.deliveries() if d.state == DeliveryState.PENDING)
    # Recorded like any failed attempt, lease released, due again on the schedule (not left
    # leased until the lease lapses, and not retried forever without a count).
    assert crashed.attempts == 1 and crashed.lease_owner is None
    assert crashed.last_error == "internal error while delivering: RuntimeError"
    (attempt,) = await engine.attempts(crashed.id)
    assert (attempt.outcome, attempt.error_class) == ("retry", "DeliveryError")
    assert 4 <= (crashed.next_attempt_at - engine.clock.now).total_seconds() <= 6  # type: ignore[operator]
    await engine.run_at(crashed.next_attempt_at)  # type: ignore[arg-type]
    assert {d.state for d in await engine.deliveries()} == {DeliveryState.SUCCEEDED}
    assert len(receiver.requests) == 2


async def test_a_long_attempt_renews_its_lease_so_no_other_worker_takes_it(
    tmp_path: Path, database_url: str
) -> None:
    # A 6 s lease and a receiver that answers only when told: the attempt outlives its first
    # lease, so it must be renewed (every 2 s on the runtime's clock) or another replica would
    # send the same delivery again.
    async with open_engine(
        tmp_path, database_url, workouts=1, lease_seconds=6, webhook_timeout_s=20
    ) as engine:
        secret = generate_secret()
        answer = asyncio.Event()
        receiver = await engine.receiver(secret, Answer(hold=answer))
        await engine.webhook(receiver.url(), secret, formats=("json",), concurrency=1)
        await engine.link_and_poll()
        claimed_at = engine.clock()
        running = asyncio.create_task(engine.run())
        try:
            await wait_until(lambda: bool(receiver.requests), "the attempt", 10, 0.02)
            (delivery,) = await engine.deliveries()
            assert delivery.lease_expires_at == claimed_at + timedelta(seconds=6)
            now = engine.clock.advance(seconds=5)  # the first lease has a second left

            async def renewed() -> bool:
                found = await engine.delivery(delivery.id)
                return found.lease_expires_at == now + timedelta(seconds=6)

            await wait_until(renewed, "the lease renewal", 10, 0.02)
            async with engine.runtime.sessions() as session, session.begin():
                taken = await DeliveryRepository(session).claim_for_destination(
                    delivery.destination_id,
                    owner="another-replica",
                    now=now + timedelta(seconds=2),  # past the first lease, within the renewal
                    lease=timedelta(seconds=6),
                    limit=5,
                )
            assert taken == []
        finally:
            answer.set()
            await running
        (done,) = await engine.deliveries()
        assert done.state == DeliveryState.SUCCEEDED and done.lease_owner is None
        assert len(receiver.requests) == 1


async def test_a_failed_claim_leaks_no_slot_and_an_unsure_one_is_given_back(
    engine: Engine, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await engine.receiver(secret)
    destination = await engine.webhook(receiver.url(), secret, concurrency=2)
    await engine.link_and_poll()
    job = engine.job
    load_many = DeliveryRepository.load_many

    async def database_gone(self: DeliveryRepository, ids: Any) -> Any:
        raise ConnectionResetError("the database went away")

    # The tick fails after claiming (its transaction rolls back): no slot stays taken.
    monkeypatch.setattr(DeliveryRepository, "load_many", database_gone)
    with pytest.raises(ConnectionResetError):
        await job.tick()
    assert job.per_destination[destination.id] == 0 and not job.running
    monkeypatch.setattr(DeliveryRepository, "load_many", load_many)

    # A claim whose commit landed although its answer was lost: leased to this worker, never
    # started. The next tick gives the leases back and sends them, without waiting for expiry.
    async with engine.runtime.sessions() as session, session.begin():
        leased = await DeliveryRepository(session).claim_for_destination(
            destination.id,
            owner=engine.runtime.worker,
            now=engine.clock(),
            lease=timedelta(hours=1),
            limit=5,
        )
    assert len(leased) == 2
    job._unsure.update(leased)
    await engine.run()
    assert {d.state for d in await engine.deliveries()} == {DeliveryState.SUCCEEDED}
    assert len(receiver.requests) == 2 and not job._unsure
