"""The request budget's decisions (pure): admission and throttling pauses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.peloton.budget import (
    BACKGROUND_QUEUE,
    INTERACTIVE_QUEUE,
    PAUSE_BASE,
    PAUSE_MAX,
    STREAK_RESET,
    BudgetState,
    Priority,
    admit,
    pause_for,
    throttled,
)

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def grant_all(
    state: BudgetState, now: datetime, rate: float, n: int, priority: Priority
) -> list[datetime]:
    slots = []
    for _ in range(n):
        decision = admit(state, now, rate=rate, priority=priority)
        if not decision.granted:
            break
        slots.append(decision.at)
        state = decision.state
    return slots


@given(
    rate=st.floats(min_value=0.005, max_value=50),
    asks=st.lists(
        st.tuples(st.floats(min_value=0, max_value=5), st.sampled_from(list(Priority))),
        min_size=1,
        max_size=80,
    ),
)
def test_granted_slots_are_never_closer_than_the_rate_allows(
    rate: float, asks: list[tuple[float, Priority]]
) -> None:
    """Whatever arrives when, with whichever priority: granted slots are 1/rate apart or more,
    never in the past, and no request waits longer than its priority's queue."""
    state, now, slots = BudgetState(), T0, []
    for gap, priority in asks:
        now += timedelta(seconds=gap)
        decision = admit(state, now, rate=rate, priority=priority)
        if decision.granted:
            assert decision.at >= now
            limit = INTERACTIVE_QUEUE if priority is Priority.INTERACTIVE else BACKGROUND_QUEUE
            assert decision.at - now <= limit
            slots.append(decision.at)
            state = decision.state
        else:
            assert decision.reason == "busy" and decision.at > now
    slots.sort()
    spacing = timedelta(seconds=1 / rate)
    for earlier, later in zip(slots, slots[1:], strict=False):
        assert later - earlier >= spacing - timedelta(microseconds=2)


def test_interactive_requests_go_ahead_of_background_ones() -> None:
    """A queue long enough to hold background polls back still takes a person's request."""
    state = BudgetState()
    slots = grant_all(state, T0, 2.0, 100, Priority.BACKGROUND)
    assert len(slots) == 3  # 0, 0.5, 1.0 s: then the queue is a second long
    for _slot in slots:
        state = admit(state, T0, rate=2.0, priority=Priority.BACKGROUND).state
    background = admit(state, T0, rate=2.0, priority=Priority.BACKGROUND)
    assert not background.granted and background.reason == "busy"
    assert background.at == T0 + timedelta(seconds=0.5)  # when the queue is short enough again
    interactive = admit(state, T0, rate=2.0, priority=Priority.INTERACTIVE)
    assert interactive.granted and interactive.at == T0 + timedelta(seconds=1.5)


def test_nothing_is_granted_while_paused_and_the_pause_says_until_when() -> None:
    state = throttled(BudgetState(), T0, retry_after=120)
    assert state.paused_until == T0 + timedelta(seconds=120)
    for priority in Priority:
        decision = admit(state, T0 + timedelta(seconds=60), rate=5, priority=priority)
        assert not decision.granted and decision.reason == "throttled"
        assert decision.at == T0 + timedelta(seconds=120)
    assert admit(state, T0 + timedelta(seconds=120), rate=5, priority=Priority.BACKGROUND).granted


def test_without_retry_after_the_pause_doubles_while_throttling_repeats() -> None:
    state, now, pauses = BudgetState(), T0, []
    for _ in range(9):
        state = throttled(state, now, retry_after=None)
        assert state.paused_until is not None
        pauses.append(state.paused_until - now)
        now = state.paused_until + timedelta(seconds=1)  # throttled again right after
    assert pauses[:4] == [PAUSE_BASE, 2 * PAUSE_BASE, 4 * PAUSE_BASE, 8 * PAUSE_BASE]
    assert max(pauses) == PAUSE_MAX
    # Long after the last pause, throttling starts a fresh streak.
    fresh = throttled(state, now + STREAK_RESET + timedelta(seconds=1), retry_after=None)
    assert fresh.throttle_streak == 1 and pause_for(1) == PAUSE_BASE


def test_requests_meeting_the_same_throttling_count_once() -> None:
    first = throttled(BudgetState(), T0, retry_after=30)
    again = throttled(first, T0 + timedelta(seconds=1), retry_after=300)
    assert again == first


def test_a_zero_retry_after_still_pauses_a_little() -> None:
    state = throttled(BudgetState(), T0, retry_after=0)
    assert state.paused_until is not None and state.paused_until > T0


def test_a_slot_from_a_replica_whose_clock_runs_ahead_does_not_stall_the_others() -> None:
    ahead = BudgetState(next_slot_at=T0 + timedelta(minutes=10))
    decision = admit(ahead, T0, rate=2, priority=Priority.BACKGROUND)
    assert decision.granted and decision.at == T0
