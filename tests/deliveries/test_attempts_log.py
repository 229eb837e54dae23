"""The attempt log across manual retries, and what a failed attempt logs."""

from __future__ import annotations

from pathlib import Path

import structlog

from service.deliveries import service as deliveries_service
from service.deliveries.models import DeliveryState
from service.deliveries.retry import MAX_ATTEMPTS
from tests.deliveries.conftest import Engine, open_engine
from tests.deliveries.test_engine import walk
from tests.destinations.receiver import Answer


async def test_a_manual_retry_continues_the_numbers_with_a_fresh_budget(
    tmp_path: Path, database_url: str, secret: str
) -> None:
    async with open_engine(tmp_path, database_url, workouts=1, jitter_at=0.5) as engine:
        receiver = await engine.receiver(secret, Answer(status=500, body=b"down"))
        await engine.webhook(receiver.url(), secret)
        await engine.link_and_poll()
        await walk(engine)
        (delivery,) = await engine.deliveries()
        assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, MAX_ATTEMPTS)

        async with engine.runtime.sessions() as session, session.begin():
            await deliveries_service.retry_delivery(session, delivery.id, engine.clock.now)
        await engine.run()
        delivery = await engine.delivery(delivery.id)
        # Attempt 9 failed too, but with a new budget it is retried on the schedule again
        # rather than given up at once.
        assert delivery.attempts == MAX_ATTEMPTS + 1
        assert delivery.state == DeliveryState.PENDING
        assert delivery.next_attempt_at is not None
        assert delivery.next_attempt_at > engine.clock.now

        receiver.default = Answer(status=204)
        await walk(engine)
        delivery = await engine.delivery(delivery.id)
        assert (delivery.state, delivery.attempts) == (DeliveryState.SUCCEEDED, MAX_ATTEMPTS + 2)
        numbers = [a.number for a in await engine.attempts(delivery.id)]
        assert numbers == list(range(1, MAX_ATTEMPTS + 3))  # no number twice
        assert len(receiver.requests) == MAX_ATTEMPTS + 2


async def test_a_failed_attempt_logs_its_reason(engine: Engine, secret: str) -> None:
    receiver = await engine.receiver(secret, Answer(status=503, body=b"maintenance"))
    await engine.webhook(receiver.url(), secret)
    await engine.link_and_poll()
    with structlog.testing.capture_logs() as logs:
        await engine.run()
    finished = [e for e in logs if e["event"] == "deliveries.attempt.finished"]
    assert finished and all(e["outcome"] == "retry" for e in finished)
    for event in finished:
        assert event["status"] == 503
        assert event["error"] == "127.0.0.1 answered HTTP 503"
        assert event["error_class"] == "DeliveryError"
