"""The retry policy for deliveries: when to try again, when to give up, when to disable.

Pure functions; the engine feeds them the attempt number and the error's ``retry_after``.

Schedule (Svix's, which the Standard Webhooks spec also quotes): the first attempt at once, then
5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, each with ±20 % jitter so a destination that comes
back is not hit by every queued delivery in the same second. Eight attempts span about 27.5 h.

``Retry-After`` (from a 429/503, or the 60 s overload penalty a kind sets after a timeout) can
only push an attempt *later* than the schedule, never earlier: a receiver asking for 1 s does not
get hammered, and the schedule already backs off. It is capped at :data:`RETRY_AFTER_CAP_S`
(10 h, the schedule's longest step, as Hook0 does) so a hostile or confused header ("retry in a
month") cannot park a delivery beyond the normal retry window. Svix instead clamps to
[base, 2 × base], which discards most of a receiver's request on early attempts; we prefer
honouring it within the cap.

Auto-disable (Svix): a destination whose deliveries have failed without a single success for
5 days is disabled; a success at any time clears ``failing_since``.

:func:`decide_attempt` puts these together: from what one attempt ended with, everything that
follows (the attempt's result, the delivery's state and next attempt, what happens to the
destination). The engine decides with it, then writes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from service.deliveries.models import AttemptResult, DeliveryState
from service.destinations.kinds.base import (
    OVERLOAD_PENALTY_S,
    REAUTHORIZATION_REASON,
    DeliveryError,
    DestinationGone,
    NeedsReauthorization,
    Postponed,
)
from service.http_headers import parse_retry_after

#: Delay before each attempt, in seconds; index 0 is the first attempt (immediately).
SCHEDULE_S: tuple[float, ...] = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
#: Attempts in all, the first one included.
MAX_ATTEMPTS = len(SCHEDULE_S)
#: Each scheduled delay is multiplied by a uniform factor in [1 - JITTER, 1 + JITTER].
JITTER = 0.2
#: The longest wait a ``Retry-After`` can impose.
RETRY_AFTER_CAP_S = 10 * 3600.0
#: A destination failing for this long with no success in between is disabled.
DISABLE_AFTER = timedelta(days=5)
#: How long a rate-limited delivery waits when the destination did not say (and at least 1 s).
POSTPONE_DEFAULT_S = 60.0


class RandomSource(Protocol):
    """What the policy needs from a random generator (``random.Random`` fits)."""

    def uniform(self, a: float, b: float) -> float: ...


_default_rng = random.Random()


def first_attempt_delay() -> float:
    """The first attempt is due at once."""
    return SCHEDULE_S[0]


def next_attempt_delay(
    attempt: int, retry_after: float | None = None, *, rng: RandomSource | None = None
) -> float | None:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), or ``None`` to give up.

    ``retry_after`` is the wait the destination asked for (or a kind's overload penalty);
    it only lengthens the wait, up to :data:`RETRY_AFTER_CAP_S`.
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    if attempt >= MAX_ATTEMPTS:
        return None
    base = SCHEDULE_S[attempt]
    factor = (rng or _default_rng).uniform(1 - JITTER, 1 + JITTER)
    delay = base * factor
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
    return delay


def should_disable(
    failing_since: datetime | None,
    last_success_at: datetime | None,
    now: datetime,
    window: timedelta = DISABLE_AFTER,
) -> bool:
    """Whether a destination has failed for ``window`` with no success since it began failing.

    Call it when a delivery fails for good (retries exhausted); ``failing_since`` is when the
    current run of failures started (``None`` while healthy).
    """
    if failing_since is None:
        return False
    if last_success_at is not None and last_success_at >= failing_since:
        return False
    return now - failing_since >= window


def auto_disable_reason(failing_since: datetime) -> str:
    """Why :func:`should_disable` disabled a destination, as shown to the user."""
    return f"failing without a success since {failing_since:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class AttemptDecision:
    """Everything that follows one attempt (:func:`decide_attempt`); the engine writes it."""

    result: AttemptResult
    #: The delivery's new state; ``None``: it stays as it is (pending).
    state: DeliveryState | None
    #: Whether the attempt counts in ``Delivery.attempts`` (a postponed or parked one does not).
    counted: bool
    #: When the delivery is due again; ``None``: never on its own (succeeded or failed).
    next_attempt_at: datetime | None
    #: No new attempt at this destination before then (rate limited).
    postpone_destination_until: datetime | None = None
    #: Disable the destination now, with this reason (gone, or needs re-authorization).
    disable_reason: str | None = None
    #: A retryable failure: the destination's run of failures (``failing_since``) goes on.
    failing: bool = False
    #: Out of retries: disable the destination if :func:`should_disable` says so.
    gave_up: bool = False


def decide_attempt(
    error: DeliveryError | None,
    *,
    number: int,
    budget_start: int,
    now: datetime,
    rng: RandomSource | None = None,
) -> AttemptDecision:
    """What follows attempt number ``number`` (1-based, every attempt ever) of a delivery whose
    current retry budget began after attempt ``budget_start``; ``error`` is ``None`` when it
    succeeded.

    - success -> ``succeeded``;
    - :class:`Postponed` -> due again after its ``retry_after`` (default
      :data:`POSTPONE_DEFAULT_S`), the destination too; not counted;
    - :class:`NeedsReauthorization` / :class:`DestinationGone` -> parked: the destination is
      disabled with the reason, the delivery stays due and resumes when it is enabled again;
    - any other error that is not retryable -> ``failed``;
    - a retryable error -> the next attempt on the schedule (:func:`next_attempt_delay`,
      counting this budget's attempts: a manual retry starts a new one), or ``failed`` and
      ``gave_up`` when the schedule is spent.
    """
    if error is None:
        return AttemptDecision(
            AttemptResult.SUCCEEDED, DeliveryState.SUCCEEDED, counted=True, next_attempt_at=None
        )
    if isinstance(error, Postponed):
        until = now + timedelta(seconds=max(error.retry_after or POSTPONE_DEFAULT_S, 1.0))
        return AttemptDecision(
            AttemptResult.POSTPONED,
            None,
            counted=False,
            next_attempt_at=until,
            postpone_destination_until=until,
        )
    if isinstance(error, NeedsReauthorization | DestinationGone):
        reason = REAUTHORIZATION_REASON if isinstance(error, NeedsReauthorization) else "gone"
        return AttemptDecision(
            AttemptResult.PARKED,
            None,
            counted=False,
            next_attempt_at=now,
            disable_reason=f"{reason}: {error.message}",
        )
    if not error.retryable:
        return AttemptDecision(
            AttemptResult.FAILED, DeliveryState.FAILED, counted=True, next_attempt_at=None
        )
    delay = next_attempt_delay(max(1, number - budget_start), error.retry_after, rng=rng)
    if delay is None:
        return AttemptDecision(
            AttemptResult.FAILED,
            DeliveryState.FAILED,
            counted=True,
            next_attempt_at=None,
            failing=True,
            gave_up=True,
        )
    return AttemptDecision(
        AttemptResult.RETRY,
        None,
        counted=True,
        next_attempt_at=now + timedelta(seconds=delay),
        failing=True,
    )


__all__ = [
    "MAX_ATTEMPTS",
    "OVERLOAD_PENALTY_S",
    "SCHEDULE_S",
    "AttemptDecision",
    "auto_disable_reason",
    "decide_attempt",
    "first_attempt_delay",
    "next_attempt_delay",
    "parse_retry_after",
    "should_disable",
]
