"""Engine corner cases found while testing it end to end: concurrent attempts of one
destination recording their outcomes, and attempts that crash with an unexpected error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from service.deliveries.models import DeliveryState
from tests.deliveries.conftest import Engine
from tests.destinations.receiver import Answer


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
    render = engine.runtime.converter.render
    crashes = []

    async def crashing_once(bundle: dict[str, Any], fmt: str, device: Any = None) -> bytes:
        if not crashes:
            crashes.append(fmt)
            raise RuntimeError("the conversion pool broke")  # e.g. BrokenProcessPool
        return await render(bundle, fmt, device)

    monkeypatch.setattr(engine.runtime.converter, "render", crashing_once)
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
