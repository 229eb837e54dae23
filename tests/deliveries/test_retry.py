"""The delivery retry policy: schedule, jitter, Retry-After bounds, give-up, auto-disable."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from service.deliveries.retry import (
    JITTER,
    MAX_ATTEMPTS,
    OVERLOAD_PENALTY_S,
    RETRY_AFTER_CAP_S,
    first_attempt_delay,
    next_attempt_delay,
    parse_retry_after,
    should_disable,
)


class Fixed:
    """A random source that always picks the same point of the range (0 = low, 1 = high)."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a + (b - a) * self.at


MIDDLE = Fixed(0.5)
EXPECTED = {1: 5, 2: 300, 3: 1800, 4: 7200, 5: 18000, 6: 36000, 7: 36000}


def test_the_first_attempt_is_immediate() -> None:
    assert first_attempt_delay() == 0


@pytest.mark.parametrize(("attempt", "delay"), EXPECTED.items())
def test_each_step_of_the_schedule(attempt: int, delay: float) -> None:
    assert next_attempt_delay(attempt, rng=MIDDLE) == pytest.approx(delay)


def test_eight_attempts_then_give_up() -> None:
    assert MAX_ATTEMPTS == 8
    assert next_attempt_delay(8, rng=MIDDLE) is None
    assert next_attempt_delay(9, rng=MIDDLE) is None
    assert next_attempt_delay(8, retry_after=5, rng=MIDDLE) is None
    total = sum(next_attempt_delay(n, rng=MIDDLE) or 0 for n in range(1, 8))
    assert total == pytest.approx(27 * 3600 + 35 * 60 + 5)  # the last attempt ~27.6 h in


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        next_attempt_delay(0)


@pytest.mark.parametrize(("attempt", "delay"), EXPECTED.items())
def test_jitter_bounds(attempt: int, delay: float) -> None:
    low = next_attempt_delay(attempt, rng=Fixed(0.0))
    high = next_attempt_delay(attempt, rng=Fixed(1.0))
    assert low == pytest.approx(delay * (1 - JITTER)) == pytest.approx(delay * 0.8)
    assert high == pytest.approx(delay * (1 + JITTER)) == pytest.approx(delay * 1.2)


def test_jitter_spreads_within_bounds() -> None:
    rng = random.Random(1234)
    delays = [next_attempt_delay(3, rng=rng) or 0 for _ in range(2000)]
    assert all(1440 <= d <= 2160 for d in delays)
    assert min(delays) < 1500 and max(delays) > 2100  # both ends are reached
    assert len({round(d, 3) for d in delays}) > 1900  # not a handful of values


def test_the_default_random_source_jitters() -> None:
    delays = {next_attempt_delay(2) for _ in range(50)}
    assert len(delays) > 1 and all(d is not None and 240 <= d <= 360 for d in delays)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, 120, 120),  # longer than 5 s: honoured
        (1, 1, 5),  # shorter than the schedule: the schedule wins
        (2, 0, 300),
        (2, 3600, 3600),
        (1, 86_400 * 30, RETRY_AFTER_CAP_S),  # "a month" is capped at 10 h
        (7, 86_400, 36_000),  # at the cap already
        (1, OVERLOAD_PENALTY_S, 60),  # the overload penalty after a timeout
        (1, -50, 5),  # nonsense is ignored
        (1, float("nan"), 5),
        (1, float("inf"), 5),
    ],
)
def test_retry_after_only_lengthens_within_the_cap(
    attempt: int, retry_after: float, expected: float
) -> None:
    assert next_attempt_delay(attempt, retry_after, rng=MIDDLE) == pytest.approx(expected)


def test_retry_after_under_the_jittered_delay_keeps_the_jitter() -> None:
    assert next_attempt_delay(4, 7000, rng=Fixed(1.0)) == pytest.approx(7200 * 1.2)
    assert next_attempt_delay(4, 7000, rng=Fixed(0.0)) == pytest.approx(7000)


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(minutes=2), usegmt=True), 120.0),
        ("Sun, 01 Mar 2026 12:05:00 GMT", 300.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # already past
        ("Sun, 01 Mar 2026 12:05:00", 300.0),  # no zone: GMT
        (None, None),
        ("", None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize(
    ("failing_for", "success_ago", "expected"),
    [
        (None, None, False),  # healthy
        (timedelta(days=4, hours=23), None, False),
        (timedelta(days=5), None, True),
        (timedelta(days=9), None, True),
        (timedelta(days=6), timedelta(days=7), True),  # the success was before the failures
        (timedelta(days=6), timedelta(days=1), False),  # a success since: not disabled
        (timedelta(days=6), timedelta(days=6), False),  # success at the same instant
    ],
)
def test_should_disable(
    failing_for: timedelta | None, success_ago: timedelta | None, expected: bool
) -> None:
    failing_since = NOW - failing_for if failing_for else None
    last_success = NOW - success_ago if success_ago else None
    assert should_disable(failing_since, last_success, NOW) is expected


def test_should_disable_window_is_configurable() -> None:
    since = NOW - timedelta(hours=13)
    assert should_disable(since, None, NOW, window=timedelta(hours=12))
    assert not should_disable(since, None, NOW, window=timedelta(hours=14))
