"""When to poll next (pure): habits, inactivity, classes in progress, limits, spreading."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.accounts.schedule import (
    AFTER_CLASS_END,
    PollPolicy,
    after_pause,
    hourly_intervals,
    needs_listing,
    next_poll,
)

POLICY = PollPolicy(
    base=timedelta(hours=1), minimum=timedelta(minutes=5), maximum=timedelta(hours=4)
)
NOW = datetime(2026, 12, 2, 5, 30, tzinfo=UTC)
LINKED = NOW - timedelta(days=200)


def morning_rider(weeks: int = 4, hour: int = 6) -> list[tuple[datetime, datetime | None]]:
    """Rides at 06:00-06:45 UTC four days a week."""
    rides = []
    for day in range(weeks * 7):
        if day % 7 in (0, 2, 4, 5):
            start = NOW.replace(hour=hour, minute=0) - timedelta(days=day + 1)
            rides.append((start, start + timedelta(minutes=45)))
    return rides


def test_usual_hours_are_polled_more_often_and_the_night_less() -> None:
    intervals = hourly_intervals(morning_rider(), NOW, POLICY, active_since=LINKED)
    assert intervals[6] < timedelta(minutes=25)
    assert intervals[6] < intervals[9] < intervals[12] <= intervals[18]
    assert intervals[18] <= 2 * POLICY.base  # never longer than twice base while active
    polls_per_day = sum(timedelta(hours=1) / i for i in intervals)
    assert polls_per_day < 24  # fewer than a rider without habits, at base all day


def test_a_rider_without_habits_yet_is_polled_at_base() -> None:
    few = morning_rider()[:3]
    assert set(hourly_intervals(few, NOW, POLICY, active_since=LINKED)) == {POLICY.base}
    new_account = hourly_intervals([], NOW, POLICY, active_since=NOW - timedelta(days=1))
    assert set(new_account) == {POLICY.base}


def test_riders_inactive_for_weeks_are_polled_seldom_down_to_the_maximum() -> None:
    rides = morning_rider()
    idle_3_weeks = hourly_intervals(
        [(s - timedelta(days=21), e) for s, e in rides], NOW, POLICY, active_since=LINKED
    )
    active = hourly_intervals(rides, NOW, POLICY, active_since=LINKED)
    assert all(i >= a for i, a in zip(idle_3_weeks, active, strict=True))
    assert idle_3_weeks[6] > active[6] * 3
    gone = hourly_intervals([], NOW, POLICY, active_since=LINKED)
    assert set(gone) == {POLICY.maximum}


def test_the_hour_before_a_busy_hour_polls_early_in_it() -> None:
    intervals = hourly_intervals(morning_rider(), NOW, POLICY, active_since=LINKED)
    at = next_poll(NOW, key=7, policy=POLICY, intervals=intervals)  # 05:30, quiet hour
    assert at <= NOW.replace(hour=6) + intervals[6]


def test_a_class_in_progress_is_looked_at_two_minutes_after_its_end() -> None:
    intervals = (POLICY.base,) * 24
    end = NOW + timedelta(minutes=20)
    at = next_poll(NOW, key=1, policy=POLICY, intervals=intervals, expected_ends=[end])
    assert at == end + AFTER_CLASS_END
    # ... but never sooner than the minimum interval.
    soon = NOW + timedelta(minutes=1)
    at = next_poll(NOW, key=1, policy=POLICY, intervals=intervals, expected_ends=[soon])
    assert at == NOW + POLICY.minimum


def test_the_account_interval_override_is_kept() -> None:
    intervals = hourly_intervals(morning_rider(), NOW, POLICY, active_since=LINKED)
    override = timedelta(minutes=45)
    for minute in range(0, 600, 37):
        now = NOW + timedelta(minutes=minute)
        at = next_poll(now, key=3, policy=POLICY, intervals=intervals, override=override)
        assert now + 0.85 * override <= at <= now + override


durations = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(hours=30))


@given(
    now=st.datetimes(
        min_value=datetime(2021, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
    key=st.integers(min_value=1, max_value=2**40),
    hours=st.lists(durations, min_size=24, max_size=24),
    override=st.none() | st.timedeltas(min_value=timedelta(minutes=5), max_value=timedelta(days=1)),
    ends=st.lists(st.timedeltas(min_value=-timedelta(hours=2), max_value=timedelta(hours=5))),
)
def test_the_next_poll_is_always_within_the_limits(
    now: datetime,
    key: int,
    hours: list[timedelta],
    override: timedelta | None,
    ends: list[timedelta],
) -> None:
    intervals = tuple(POLICY.clamp(h) for h in hours)
    at = next_poll(
        now,
        key=key,
        policy=POLICY,
        intervals=intervals,
        override=override,
        expected_ends=[now + e for e in ends],
    )
    assert now + POLICY.minimum <= at <= now + POLICY.maximum
    assert at <= now + max(override or intervals[now.hour], POLICY.minimum)


def test_accounts_polled_together_spread_evenly_within_a_few_polls() -> None:
    """1,000 accounts polled at the same moment (a start-up): a few polls later their polls
    are spread over the interval instead of bunched."""
    intervals = (POLICY.base,) * 24
    times = dict.fromkeys(range(1, 1001), NOW)
    for _ in range(30):
        times = {
            key: next_poll(t, key=key, policy=POLICY, intervals=intervals)
            for key, t in times.items()
        }
    base_s = POLICY.base.total_seconds()
    bins = Counter(int((t.timestamp() % base_s) / base_s * 10) for t in times.values())
    assert len(bins) == 10 and max(bins.values()) < 150 and min(bins.values()) > 50


def test_after_a_pause_accounts_come_back_spread_over_the_minimum_interval() -> None:
    until = NOW + timedelta(minutes=3)
    times = [after_pause(until, key=key, policy=POLICY) for key in range(1, 1001)]
    assert all(until < t <= until + POLICY.minimum + timedelta(seconds=1) for t in times)
    minutes = Counter(int((t - until).total_seconds() // 60) for t in times)
    assert max(minutes.values()) < 300  # about 200 a minute, not 1,000 at once


def test_the_probe_asks_for_a_listing_only_when_the_newest_workout_is_new() -> None:
    assert not needs_listing(None, known=False, pending=[])  # no workouts at all
    assert not needs_listing("w9", known=True, pending=[])
    assert not needs_listing("w9", known=False, pending=["w9"])  # the class we watch
    assert needs_listing("w9", known=False, pending=["w8"])
