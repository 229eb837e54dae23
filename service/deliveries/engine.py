"""One delivery attempt: convert, hand to the destination's kind, record, decide what's next.

Outcomes (each attempt is logged in ``delivery_attempts``):

- delivered → ``succeeded`` with the destination's id for it; the destination is healthy;
- :class:`Postponed` (rate limited) → due again after ``retry_after``; not counted;
- :class:`NeedsReauthorization` / :class:`DestinationGone` → the destination is disabled with
  the reason; the delivery stays pending and resumes when the destination is re-enabled;
- :class:`PermanentFailure` or an unconvertible workout → ``failed`` (retry or replay by hand);
- any other :class:`DeliveryError` → retried on the schedule, ``failed`` when it runs out; a
  destination failing for 5 days without a success is disabled.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.models import Account
from service.convert.formats import FORMATS, Format
from service.deliveries.models import AttemptResult, Delivery, DeliveryAttempt, DeliveryState
from service.deliveries.recorder import Outcome, Recorder
from service.deliveries.repository import DeliveryRepository, Loaded, attempt_values
from service.deliveries.retry import auto_disable_reason, decide_attempt, should_disable
from service.destinations.kinds.base import (
    AccountInfo,
    Delivered,
    DeliveryError,
    DeliveryRequest,
    NeedsReauthorization,
    OutgoingFile,
    PermanentFailure,
    WorkoutInfo,
    excerpt,
)
from service.destinations.kinds.registry import build_handler, fit_device
from service.destinations.models import Destination
from service.errors import ConversionError, PelosyncError
from service.events import service as events
from service.files.signing import download_link
from service.metrics import observe_attempt
from service.runtime import Runtime
from service.workouts.models import Workout

log = structlog.get_logger(__name__)


@dataclass
class AttemptOutcome:
    outcome: AttemptResult
    error: str | None = None


def workout_info(workout: Workout) -> WorkoutInfo:
    return WorkoutInfo(
        id=workout.id,
        peloton_workout_id=workout.peloton_workout_id,
        discipline=workout.discipline,
        title=workout.title,
        instructor=workout.instructor,
        start=workout.started_at,
        end=workout.ended_at,
        duration_s=workout.duration_s,
        distance_m=workout.distance_m,
        calories_kcal=workout.calories_kcal,
        avg_heart_rate=workout.avg_heart_rate,
        max_heart_rate=workout.max_heart_rate,
        avg_power=workout.avg_power,
        is_outdoor=workout.is_outdoor,
        has_gps=workout.has_gps,
    )


def account_info(account: Account) -> AccountInfo:
    return AccountInfo(
        id=account.id,
        label=account.label,
        peloton_user_id=account.peloton_user_id,
        peloton_username=account.peloton_username,
    )


class DeliveryRunner:
    def __init__(self, runtime: Runtime, rng: random.Random | None = None) -> None:
        self.rt = runtime
        self.rng = rng or random.Random()
        # Finished attempts are written in shared transactions (see recorder.py).
        self.recorder = Recorder(runtime.sessions)

    async def attempt(
        self,
        delivery_id: int,
        *,
        loaded: Loaded | None = None,
        sent: Callable[[], None] | None = None,
    ) -> AttemptOutcome | None:
        """Run one attempt of a delivery this worker has leased (``loaded`` with the claim);
        ``sent`` is called once a delivery has succeeded, before its outcome is written (the
        destination's slot is free from then on)."""
        if loaded is None:
            async with self.rt.sessions() as session:
                loaded = await DeliveryRepository(session).load(delivery_id)
        if loaded is None:
            return None
        delivery, workout, account, destination, raw = loaded
        started = self.rt.clock()
        t0 = time.perf_counter()
        result: Delivered | None = None
        error: BaseException | None = None
        try:
            device = (
                fit_device(destination, workout.discipline) if delivery.format == "fit" else None
            )
            rendered = await self.rt.converter.render_raw(raw, delivery.format, device)
            file = OutgoingFile(
                format=delivery.format,
                filename=workout.file_name(delivery.format),
                content_type=FORMATS[Format(delivery.format)].content_type,
                data=rendered.data,
                digest=rendered.sha256,
            )
            request = DeliveryRequest(
                delivery_id=delivery.id,
                message_id=delivery.message_id,
                attempt=delivery.attempts + 1,
                account=account_info(account),
                workout=workout_info(workout),
                file=file,
                # Files over a webhook's inline limit travel as a signed link instead.
                download_url=download_link(self.rt, workout.id, delivery.format),
            )
            handler = build_handler(self.rt, destination)
            result = await handler.deliver(request)
        except ConversionError as exc:
            error = PermanentFailure(
                f"workout cannot be converted to {delivery.format}: {exc.message}"
            )
        except DeliveryError as exc:
            error = exc
        except PelosyncError as exc:  # a broken destination config, a secret that won't decrypt
            error = PermanentFailure(exc.message)
        except Exception as exc:
            # A bug or a broken conversion pool: record it and retry on the schedule. Left to
            # crash, the delivery would stay leased until the lease lapsed and then be retried
            # forever, uncounted and unrecorded. Only the class is kept: messages may hold data.
            log.exception("deliveries.attempt.crashed", delivery_id=delivery.id)
            error = DeliveryError(f"internal error while delivering: {type(exc).__name__}")
        duration_ms = int((time.perf_counter() - t0) * 1000)
        if sent is not None and result is not None:
            # Only a success: a failure's outcome may disable or postpone the destination,
            # which the next claim must see.
            sent()
        return await self._record(delivery, destination, started, duration_ms, result, error)

    async def _record(
        self,
        delivery: Delivery,
        destination: Destination,
        started: datetime,
        duration_ms: int,
        result: Delivered | None,
        error: BaseException | None,
    ) -> AttemptOutcome:
        """Decide what follows the attempt (``retry.decide_attempt``), then write it."""
        now = self.rt.clock()
        number = delivery.attempts + 1
        failure = None if result is not None else error
        assert failure is None or isinstance(failure, DeliveryError)
        decision = decide_attempt(
            failure, number=number, budget_start=delivery.budget_start, now=now, rng=self.rng
        )
        outcome = AttemptOutcome(decision.result, failure.message if failure else None)
        attempt = DeliveryAttempt(
            delivery_id=delivery.id,
            number=number,
            worker=self.rt.worker,
            started_at=started,
            duration_ms=duration_ms,
            outcome=decision.result,
        )
        values: dict[str, Any] = {"next_attempt_at": decision.next_attempt_at}
        if decision.state is not None:
            values["state"] = decision.state
        if decision.counted:
            values["attempts"] = number
        dest_values: dict[str, Any] = {}
        if decision.postpone_destination_until is not None:
            dest_values["postponed_until"] = decision.postpone_destination_until
        if decision.disable_reason is not None:
            dest_values.update(enabled=False, disabled_reason=decision.disable_reason)
        failing, gave_up = decision.failing, decision.gave_up
        if result is not None:
            attempt.status_code = result.status_code
            attempt.response_excerpt = excerpt(result.response_excerpt)
            values.update(
                last_status_code=result.status_code,
                last_error=None,
                external_id=result.external_id,
                delivered_at=now,
            )
            dest_values.update(last_success_at=now, failing_since=None)
            secrets_update = result.updated_secrets
            learned = result.learned_inline_max
        else:
            assert failure is not None
            attempt.status_code = failure.remote_status
            attempt.error_class = type(failure).__name__
            attempt.error = failure.message
            attempt.response_excerpt = excerpt(failure.response_excerpt)
            values.update(last_status_code=failure.remote_status, last_error=failure.message)
            secrets_update = failure.updated_secrets
            learned = failure.learned_inline_max

        healthy = result is not None and not secrets_update and learned is None
        failed = decision.state == DeliveryState.FAILED  # given up: delivery.failed

        async def upkeep(session: AsyncSession) -> None:
            # Read (and lock) the destination's health now, not as it was when the attempt
            # started: a concurrent attempt may have succeeded since, and a stale
            # failing_since written back would predate that success and stop auto-disable.
            row = await session.get(Destination, destination.id, with_for_update=True)
            if row is None:
                return
            was_enabled = row.enabled
            for key, value in dest_values.items():
                setattr(row, key, value)
            if failing:
                row.failing_since = row.failing_since or now
            if gave_up and should_disable(row.failing_since, row.last_success_at, now):
                assert row.failing_since is not None
                row.enabled = False
                row.disabled_reason = auto_disable_reason(row.failing_since)
            # Operational events, in this transaction (service/events).
            if was_enabled and not row.enabled:
                reauthorize = isinstance(error, NeedsReauthorization)
                await events.destination_disabled(
                    session, row, row.disabled_reason, now=now, needs_reauthorization=reauthorize
                )
            if failed:
                await events.delivery_failed(session, delivery.id, values["last_error"], now=now)
            if secrets_update:
                merged = {**self.rt.secrets.decrypt_json(row.secrets_encrypted), **secrets_update}
                row.secrets_encrypted = self.rt.secrets.encrypt_json(merged)
            if learned is not None:
                # The webhook's receiver refused a file that size inline: remember it (the
                # smaller, when attempts side by side each learned one).
                current = row.config.get("inline_max_bytes")
                if current is None or learned < current:
                    row.config = {**row.config, "inline_max_bytes": learned}

        recorded = Outcome(
            delivery_id=delivery.id,
            owner=self.rt.worker,
            values=values,
            attempt=attempt_values(attempt),
            destination_id=destination.id,
            healthy_at=now if healthy else None,
            then=upkeep
            if not healthy
            and (dest_values or failing or failed or secrets_update or learned is not None)
            else None,
        )
        if not await self.recorder.record(recorded):  # nothing written: not ours any more
            log.warning("deliveries.lease_lost", delivery_id=delivery.id)
            return AttemptOutcome(AttemptResult.LEASE_LOST)
        log.info(
            "deliveries.attempt.finished",
            delivery_id=delivery.id,
            destination_id=destination.id,
            format=delivery.format,
            attempt=number,
            outcome=outcome.outcome,
            status=attempt.status_code,
            duration_ms=duration_ms,
            # Why it failed, as recorded on the attempt (the kinds redact credentials from it).
            **({"error": outcome.error, "error_class": attempt.error_class} if error else {}),
        )
        observe_attempt(destination.kind, outcome.outcome, duration_ms / 1000)
        return outcome
