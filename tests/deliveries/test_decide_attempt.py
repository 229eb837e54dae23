"""What follows one delivery attempt (pure): ``retry.decide_attempt``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.deliveries.models import AttemptResult, DeliveryState
from service.deliveries.retry import (
    JITTER,
    MAX_ATTEMPTS,
    POSTPONE_DEFAULT_S,
    RETRY_AFTER_CAP_S,
    SCHEDULE_S,
    AttemptDecision,
    auto_disable_reason,
    decide_attempt,
)
from service.destinations.kinds.base import (
    DeliveryError,
    DestinationGone,
    NeedsReauthorization,
    PermanentFailure,
    Postponed,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class Middle:
    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


R, S = AttemptResult, DeliveryState


def retry(due: datetime) -> AttemptDecision:
    return AttemptDecision(R.RETRY, None, counted=True, next_attempt_at=due, failing=True)


def postponed(due: datetime) -> AttemptDecision:
    return AttemptDecision(
        R.POSTPONED, None, counted=False, next_attempt_at=due, postpone_destination_until=due
    )


SUCCEEDED = AttemptDecision(R.SUCCEEDED, S.SUCCEEDED, counted=True, next_attempt_at=None)
FAILED = AttemptDecision(R.FAILED, S.FAILED, counted=True, next_attempt_at=None)
GAVE_UP = AttemptDecision(
    R.FAILED, S.FAILED, counted=True, next_attempt_at=None, failing=True, gave_up=True
)
LAST = MAX_ATTEMPTS

# (error, attempt number, budget start) -> what follows
TABLE = [
    (None, 1, 0, SUCCEEDED),
    (None, 9, 0, SUCCEEDED),
    (PermanentFailure("no"), 1, 0, FAILED),
    (DeliveryError("5xx"), 1, 0, retry(at(5))),
    (DeliveryError("5xx"), 3, 0, retry(at(1800))),
    # A retryable error asking for longer than the schedule: its wait, up to the cap.
    (DeliveryError("503", retry_after=600), 1, 0, retry(at(600))),
    (DeliveryError("503", retry_after=1e9), 2, 0, retry(at(RETRY_AFTER_CAP_S))),
    # Out of retries: failed, and the destination may be disabled.
    (DeliveryError("5xx"), LAST, 0, GAVE_UP),
    # A manual retry gave a new budget after attempt 8: attempt 9 is the budget's first.
    (DeliveryError("5xx"), LAST + 1, LAST, retry(at(5))),
    (DeliveryError("5xx"), LAST + 2, LAST, retry(at(300))),
    # Postponed attempts do not count, whatever the attempt number; the delivery stays pending.
    (Postponed("429", retry_after=120), 1, 0, postponed(at(120))),
    (Postponed("429"), 1, 0, postponed(at(POSTPONE_DEFAULT_S))),
    (Postponed("429", retry_after=0.01), 1, 0, postponed(at(1))),
    (Postponed("429", retry_after=120), LAST, 0, postponed(at(120))),
    # Parked: the destination is disabled, the delivery stays due for when it is enabled again.
    (
        NeedsReauthorization("token revoked"),
        1,
        0,
        AttemptDecision(
            R.PARKED,
            None,
            counted=False,
            next_attempt_at=NOW,
            disable_reason="needs re-authorization: token revoked",
        ),
    ),
    (
        DestinationGone("HTTP 410"),
        LAST,
        0,
        AttemptDecision(
            R.PARKED, None, counted=False, next_attempt_at=NOW, disable_reason="gone: HTTP 410"
        ),
    ),
]


@pytest.mark.parametrize(("error", "number", "budget_start", "expected"), TABLE)
def test_what_follows_an_attempt(
    error: DeliveryError | None, number: int, budget_start: int, expected: AttemptDecision
) -> None:
    decision = decide_attempt(
        error, number=number, budget_start=budget_start, now=NOW, rng=Middle()
    )
    assert decision == expected


def test_the_auto_disable_reason_names_when_the_failures_began() -> None:
    since = datetime(2026, 11, 30, 7, 5, tzinfo=UTC)
    assert auto_disable_reason(since) == "failing without a success since 2026-11-30 07:05 UTC"


@given(
    number=st.integers(min_value=1, max_value=3 * MAX_ATTEMPTS),
    budget_start=st.integers(min_value=0, max_value=3 * MAX_ATTEMPTS),
    retry_after=st.none() | st.floats(allow_nan=True, allow_infinity=True),
)
def test_a_retryable_failure_is_retried_within_the_schedule_or_given_up(
    number: int, budget_start: int, retry_after: float | None
) -> None:
    decision = decide_attempt(
        DeliveryError("x", retry_after=retry_after),
        number=number,
        budget_start=budget_start,
        now=NOW,
    )
    assert decision.counted and decision.failing
    in_budget = max(1, number - budget_start)
    if in_budget >= MAX_ATTEMPTS:
        assert decision.result == AttemptResult.FAILED
        assert decision.state == DeliveryState.FAILED and decision.gave_up
        assert decision.next_attempt_at is None
    else:
        assert decision.result == AttemptResult.RETRY
        assert decision.state is None and not decision.gave_up
        assert decision.next_attempt_at is not None
        wait = (decision.next_attempt_at - NOW).total_seconds()
        scheduled = SCHEDULE_S[in_budget]
        assert scheduled * (1 - JITTER) - 1e-6 <= wait
        assert wait <= max(scheduled * (1 + JITTER), RETRY_AFTER_CAP_S) + 1e-6
