"""What a poll's outcome changes on its account, and when it is polled next (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.accounts.models import AccountStatus, PollOutcome
from service.accounts.schedule import (
    FAILURE_BACKOFF_MAX,
    MORE_WORK_DELAY,
    AfterPoll,
    Interval,
    PollPolicy,
    after_pause,
    after_poll,
    failure_backoff,
    next_poll,
    next_poll_after,
)

POLICY = PollPolicy(
    base=timedelta(hours=1), minimum=timedelta(minutes=5), maximum=timedelta(hours=4)
)
NOW = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
HOURLY = (timedelta(hours=1),) * 24
KEY = 42


@pytest.mark.parametrize(
    ("outcome", "failures", "expected"),
    [
        (PollOutcome.OK, 0, AfterPoll(AccountStatus.ACTIVE, 0, succeeded=True, scheduled=True)),
        (PollOutcome.OK, 5, AfterPoll(AccountStatus.ACTIVE, 0, succeeded=True, scheduled=True)),
        (PollOutcome.RATE_LIMITED, 3, AfterPoll(None, None, succeeded=False, scheduled=True)),
        (
            PollOutcome.NEEDS_REAUTH,
            3,
            AfterPoll(AccountStatus.NEEDS_REAUTH, None, succeeded=False, scheduled=False),
        ),
        (PollOutcome.ERROR, 0, AfterPoll(AccountStatus.ERROR, 1, succeeded=False, scheduled=True)),
        (PollOutcome.ERROR, 4, AfterPoll(AccountStatus.ERROR, 5, succeeded=False, scheduled=True)),
    ],
)
def test_what_a_poll_changes_on_its_account(
    outcome: PollOutcome, failures: int, expected: AfterPoll
) -> None:
    assert after_poll(outcome, failures=failures) == expected


@pytest.mark.parametrize("outcome", [PollOutcome.LEASE_LOST, PollOutcome.GONE])
def test_outcomes_that_write_nothing_change_nothing(outcome: PollOutcome) -> None:
    with pytest.raises(ValueError, match="changes nothing"):
        after_poll(outcome, failures=0)


@pytest.mark.parametrize(
    ("failures", "wait"),
    [(1, 1), (2, 2), (3, 4), (6, 32), (9, 256), (10, 360), (100, 360)],  # minutes
)
def test_failures_back_off_exponentially_up_to_six_hours(failures: int, wait: int) -> None:
    assert failure_backoff(failures) == timedelta(minutes=wait)


def after(outcome: PollOutcome, *, intervals: Interval = HOURLY, **kwargs: Any) -> datetime:
    return next_poll_after(outcome, NOW, key=KEY, policy=POLICY, intervals=intervals, **kwargs)


def test_a_failed_poll_backs_off_but_never_past_the_interval() -> None:
    assert after(PollOutcome.ERROR, failures=3) == NOW + timedelta(minutes=4)
    assert after(PollOutcome.ERROR, failures=12) == NOW + timedelta(hours=1)
    assert after(PollOutcome.ERROR, failures=12, override=timedelta(hours=2)) == NOW + timedelta(
        hours=2
    )


def test_a_throttled_poll_comes_back_after_the_pause_on_its_phase() -> None:
    until = NOW + timedelta(minutes=10)
    assert after(PollOutcome.RATE_LIMITED, paused_until=until) == after_pause(
        until, key=KEY, policy=POLICY
    )
    # A pause already over (or unknown) counts from now.
    past = NOW - timedelta(minutes=10)
    expected = after_pause(NOW, key=KEY, policy=POLICY)
    assert after(PollOutcome.RATE_LIMITED, paused_until=past) == expected
    assert after(PollOutcome.RATE_LIMITED) == expected


def test_a_poll_that_left_work_goes_on_at_once_unless_a_fetch_failed() -> None:
    assert after(PollOutcome.OK, more=True) == NOW + MORE_WORK_DELAY
    assert after(PollOutcome.OK, more=True, fetch_failed=True) == NOW + timedelta(minutes=1)


def test_a_successful_poll_follows_the_schedule() -> None:
    ends = [NOW + timedelta(minutes=20)]
    assert after(PollOutcome.OK, expected_ends=ends) == next_poll(
        NOW, key=KEY, policy=POLICY, intervals=HOURLY, expected_ends=ends
    )
    # A failed fetch without work left over is nothing to come back early for.
    assert after(PollOutcome.OK, fetch_failed=True) == next_poll(
        NOW, key=KEY, policy=POLICY, intervals=HOURLY
    )


@given(
    outcome=st.sampled_from([PollOutcome.OK, PollOutcome.ERROR, PollOutcome.RATE_LIMITED]),
    failures=st.integers(min_value=1, max_value=50),
    more=st.booleans(),
    fetch_failed=st.booleans(),
    interval_s=st.integers(min_value=300, max_value=4 * 3600),
    pause_s=st.integers(min_value=-3600, max_value=3600),
)
def test_the_next_poll_is_after_now_and_a_failure_waits_at_most_an_interval(
    outcome: PollOutcome,
    failures: int,
    more: bool,
    fetch_failed: bool,
    interval_s: int,
    pause_s: int,
) -> None:
    interval = timedelta(seconds=interval_s)
    paused_until = NOW + timedelta(seconds=pause_s)
    chosen = after(
        outcome,
        intervals=(interval,) * 24,
        failures=failures,
        more=more,
        fetch_failed=fetch_failed,
        paused_until=paused_until,
    )
    assert chosen > NOW
    if outcome == PollOutcome.ERROR:
        assert chosen - NOW <= min(interval, FAILURE_BACKOFF_MAX)
    if outcome == PollOutcome.RATE_LIMITED:
        assert chosen > max(paused_until, NOW)
        assert chosen <= max(paused_until, NOW) + timedelta(seconds=1) + POLICY.minimum
