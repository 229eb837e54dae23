"""Event deliveries are durable: retried on the deliveries' schedule while the receiver is
down, and sent after a restart (or by another replica) when the sender died holding them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.deliveries.retry import SCHEDULE_S
from service.destinations.kinds.webhook import WebhookConfig
from service.destinations.models import Destination
from service.errors import InvalidInput
from service.events import service as events_service
from service.events.jobs import EventJob
from service.events.models import EventDeliveryState, EventType
from service.events.repository import EventRepository
from service.runtime import open_runtime
from tests.deliveries.conftest import Engine
from tests.destinations.receiver import Answer
from tests.events.conftest import Events


async def _disable(engine: Engine, destination: Destination) -> None:
    """What the engine does when a destination is refused: the emit in its transaction."""
    async with engine.runtime.sessions() as session, session.begin():
        row = await session.get(Destination, destination.id)
        assert row is not None
        row.enabled = False
        row.disabled_reason = "gone: test"
        await events_service.destination_disabled(
            session, row, row.disabled_reason, now=engine.clock.now
        )


async def test_a_receiver_that_is_down_gets_the_event_on_a_later_attempt(
    engine: Engine, events: Events, secret: str
) -> None:
    ops = await engine.receiver(secret, Answer(status=503, body=b"deploying"))
    await events.webhook(ops.url(), secret, ["destination.disabled"])
    other = await engine.webhook("http://127.0.0.1:9/unused", secret, name="other")
    await _disable(engine, other)

    await events.job.run_until_idle()
    (delivery,) = await events.deliveries()
    assert delivery.state == EventDeliveryState.PENDING and delivery.attempts == 1
    assert delivery.last_status_code == 503
    wait = (delivery.next_attempt_at - engine.clock.now).total_seconds()  # type: ignore[operator]
    assert 0.8 * SCHEDULE_S[1] <= wait <= 1.2 * SCHEDULE_S[1]
    assert await events.job.tick() == []  # not before it is due

    ops.default = Answer(status=200)
    engine.clock.set(delivery.next_attempt_at)  # type: ignore[arg-type]
    await events.job.run_until_idle()
    (delivery,) = await events.deliveries()
    assert delivery.state == EventDeliveryState.SUCCEEDED and delivery.attempts == 2
    assert [a.outcome for a in await events.attempts()] == ["retry", "succeeded"]
    # The same message twice (receivers dedupe on webhook-id), each verified.
    ids = {request.headers["webhook-id"] for request in ops.requests}
    assert len(ops.requests) == 2 and len(ids) == 1


async def test_a_receiver_that_stays_down_fails_the_event_after_the_schedule(
    engine: Engine, events: Events, secret: str
) -> None:
    hook = await events.webhook(
        "http://127.0.0.1:9/nothing-listens", secret, ["destination.disabled"]
    )
    other = await engine.webhook("http://127.0.0.1:9/unused", secret, name="other")
    await _disable(engine, other)
    for _ in range(20):
        await events.job.run_until_idle()
        (delivery,) = await events.deliveries()
        if delivery.next_attempt_at is None:
            break
        engine.clock.set(delivery.next_attempt_at)
    assert delivery.state == EventDeliveryState.FAILED
    assert delivery.attempts == len(SCHEDULE_S)
    assert "could not connect" in (delivery.last_error or "")
    assert delivery.destination_id == hook.id


async def test_an_event_outlives_the_process_that_was_sending_it(
    engine: Engine, events: Events, secret: str
) -> None:
    ops = await engine.receiver(secret)
    await events.webhook(ops.url(), secret, ["destination.disabled"])
    other = await engine.webhook("http://127.0.0.1:9/unused", secret, name="other")
    await _disable(engine, other)
    # A replica claims it and dies before sending (its lease is never released).
    async with engine.runtime.sessions() as session, session.begin():
        lease = timedelta(seconds=engine.runtime.settings.lease_seconds)
        claimed = await EventRepository(session).claim("dead:1", engine.clock.now, lease, 10)
    assert len(claimed) == 1
    assert await events.job.tick() == []  # leased: nobody else sends it meanwhile

    # A new process on the same database, once the lease has lapsed.
    engine.clock.advance(seconds=engine.runtime.settings.lease_seconds + 1)
    async with open_runtime(engine.runtime.settings, clock=engine.clock) as restarted:
        await EventJob(restarted, lambda n, after: None).run_until_idle()
    assert [request.payload["type"] for request in ops.requests] == ["destination.disabled"]
    (delivery,) = await events.deliveries()
    assert delivery.state == EventDeliveryState.SUCCEEDED and delivery.lease_owner is None


async def test_an_unsubscribed_or_disabled_webhook_gets_nothing(
    engine: Engine, events: Events, secret: str
) -> None:
    ops = await engine.receiver(secret)
    await events.webhook(ops.url(), secret, ["delivery.failed"])
    off = await events.webhook(ops.url(), secret, ["destination.disabled"], name="off")
    await engine.update_destination(off.id, enabled=False)
    other = await engine.webhook("http://127.0.0.1:9/unused", secret, name="other")
    await _disable(engine, other)
    await events.job.run_until_idle()
    assert ops.requests == []
    assert await events.deliveries() == []
    assert await events.types() == ["destination.disabled"]  # stored all the same


def test_the_webhook_events_setting() -> None:
    base = {"url": "https://example.com/hook"}
    hidden = {"secret": "whsec_" + "A" * 32}
    assert WebhookConfig.parse(base, hidden).events == [EventType.WORKOUT_SYNCED]
    config = WebhookConfig.parse(
        {**base, "events": ["delivery.failed", "workout.synced", "delivery.failed"]}, hidden
    )
    assert config.events == [EventType.WORKOUT_SYNCED, EventType.DELIVERY_FAILED]
    assert config.split()[0]["events"] == ["workout.synced", "delivery.failed"]
    with pytest.raises(InvalidInput, match="events"):
        WebhookConfig.parse({**base, "events": ["workout.deleted"]}, hidden)
    with pytest.raises(InvalidInput, match="at least one"):
        WebhookConfig.parse({**base, "events": []}, hidden)
