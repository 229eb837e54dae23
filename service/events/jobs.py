"""The events jobs: sending event deliveries to their webhooks, and the periodic check.

:class:`EventJob` leases due event deliveries (so replicas never send one twice, and one whose
sender died is taken over once its lease lapses), signs and POSTs each through the webhook
kind (Standard Webhooks, the same signing path as ``workout.synced``), and records every
attempt. A failure is retried on the deliveries' schedule (``deliveries/retry.py``, handed in
by whoever builds the job: that policy lives in a layer above this one); out of retries, or
refused for good (410, 413), the event delivery is ``failed``.

:class:`WatchJob` runs :mod:`service.events.conditions`: credentials about to expire, and
resolving the conditions that have cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog

from service.destinations.kinds.base import (
    Delivered,
    DeliveryError,
    PermanentFailure,
    excerpt,
)
from service.destinations.kinds.registry import build_handler
from service.destinations.kinds.webhook import WebhookKind
from service.errors import PelosyncError
from service.events.conditions import check_credentials, resolve_cleared
from service.events.models import EventAttempt, EventAttemptOutcome, EventDeliveryState
from service.events.repository import EventRepository, Loaded
from service.runtime import Runtime

log = structlog.get_logger(__name__)

#: ``(attempt number, retry_after) -> seconds to wait, or None to give up``: the retry policy.
RetryDelay = Callable[[int, float | None], float | None]

#: Event deliveries claimed per tick (each is one small POST).
BATCH = 20


class EventJob:
    """Sends due event deliveries; one instance per process."""

    def __init__(self, runtime: Runtime, retry_delay: RetryDelay, *, batch: int = BATCH) -> None:
        self.rt = runtime
        self.retry_delay = retry_delay
        self.batch = batch
        self._current: asyncio.Task[list[int]] | None = None

    async def tick(self) -> list[int]:
        """Claim and send what is due; returns the event delivery ids attempted."""
        self._current = asyncio.create_task(self._tick(), name="events-send")
        return await asyncio.shield(self._current)

    async def run_until_idle(self, max_ticks: int = 100) -> None:
        """Tick until nothing is due (CLI ``--once`` and tests)."""
        for _ in range(max_ticks):
            if not await self.tick():
                return

    async def drain(self, grace: float) -> None:
        """Let a tick in flight finish (at shutdown), for at most ``grace`` seconds."""
        current = self._current
        if current is None or current.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(current), grace)
        if not current.done():
            current.cancel()  # its leases lapse and another replica sends them
            await asyncio.gather(current, return_exceptions=True)

    async def _tick(self) -> list[int]:
        now = self.rt.clock()
        lease = timedelta(seconds=self.rt.settings.lease_seconds)
        async with self.rt.sessions() as session, session.begin():
            ids = await EventRepository(session).claim(self.rt.worker, now, lease, self.batch)
        if not ids:
            return []
        async with self.rt.sessions() as session:
            loaded = await EventRepository(session).load(ids)
        await asyncio.gather(*(self._attempt(item) for item in loaded))
        return ids

    async def _attempt(self, item: Loaded) -> None:
        delivery, event, destination = item
        started = self.rt.clock()
        t0 = time.perf_counter()
        result: Delivered | None = None
        error: DeliveryError | None = None
        try:
            handler = build_handler(self.rt, destination)
            if not isinstance(handler, WebhookKind):
                raise PermanentFailure(f"destination {destination.id} is not a webhook")
            result = await handler.send_event(event.message_id, event.type, event.payload)
        except DeliveryError as exc:
            error = exc
        except PelosyncError as exc:  # a broken webhook config, a secret that won't decrypt
            error = PermanentFailure(exc.message)
        except Exception as exc:  # a bug: recorded and retried, not left leased
            log.exception("events.attempt.crashed", event_delivery_id=delivery.id)
            error = DeliveryError(f"internal error while sending: {type(exc).__name__}")
        duration_ms = int((time.perf_counter() - t0) * 1000)
        now = self.rt.clock()
        number = delivery.attempts + 1
        values: dict[str, Any] = {"attempts": number}
        attempt = EventAttempt(
            event_delivery_id=delivery.id,
            number=number,
            worker=self.rt.worker,
            started_at=started,
            duration_ms=duration_ms,
        )
        if result is not None:
            attempt.outcome = EventAttemptOutcome.SUCCEEDED
            attempt.status_code = result.status_code
            attempt.response_excerpt = excerpt(result.response_excerpt)
            values.update(
                state=EventDeliveryState.SUCCEEDED,
                next_attempt_at=None,
                last_status_code=result.status_code,
                last_error=None,
                delivered_at=now,
            )
        else:
            assert error is not None
            attempt.status_code = error.remote_status
            attempt.error = error.message
            attempt.response_excerpt = excerpt(error.response_excerpt)
            values.update(last_status_code=error.remote_status, last_error=error.message)
            delay = self.retry_delay(number, error.retry_after) if error.retryable else None
            if delay is None:
                attempt.outcome = EventAttemptOutcome.FAILED
                values.update(state=EventDeliveryState.FAILED, next_attempt_at=None)
            else:
                attempt.outcome = EventAttemptOutcome.RETRY
                values["next_attempt_at"] = now + timedelta(seconds=delay)
        async with self.rt.sessions() as session, session.begin():
            repo = EventRepository(session)
            if not await repo.finish(delivery.id, self.rt.worker, **values):
                await session.rollback()  # taken over by another worker: write nothing
                log.warning("events.lease_lost", event_delivery_id=delivery.id)
                return
            await repo.add_attempt(attempt)
        log.info(
            "events.attempt.finished",
            event_delivery_id=delivery.id,
            event_id=event.id,
            type=event.type,
            destination_id=destination.id,
            attempt=number,
            outcome=attempt.outcome,
            status=attempt.status_code,
            **({"error": error.message} if error else {}),
        )


class WatchJob:
    """The periodic check: expiring credentials, and conditions that cleared."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def tick(self) -> None:
        now = self.rt.clock()
        async with self.rt.sessions() as session, session.begin():
            await check_credentials(session, self.rt.secrets, now)
            await resolve_cleared(session, self.rt.secrets, now)
