"""The Peloton request budget's decisions, as pure functions (no I/O, no clock of their own).

Peloton's edge (Cloudflare) throttles by the caller's address, so every request leaving one
address draws from one budget: at most ``rate`` requests per second in all, whatever the
account, process or replica. The state is a handful of values kept in the database (see
:mod:`service.budget.service`); these functions say what to do with it.

Admission is the generic cell rate algorithm with reservations: ``next_slot_at`` is the
earliest time the next request may leave; a request granted the slot waits until it, and moves
it ``1/rate`` seconds on. So requests are at least ``1/rate`` apart, and the rate is never
exceeded, not even in bursts. Priorities are how far ahead a request may reserve: background
polls only while the queue is under :data:`BACKGROUND_QUEUE` long, interactive work (sync now,
linking) up to :data:`INTERACTIVE_QUEUE`. A background request that finds the queue longer
waits and asks again, so interactive requests go ahead of every background one not yet granted.

Throttling (a 429, Cloudflare's 1015) pauses the whole address: no request is granted before
``paused_until``, which is the answer's ``Retry-After`` or, without one, a backoff that doubles
while throttling repeats (:func:`pause_for`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

#: How long a queue of granted requests a background request may join.
BACKGROUND_QUEUE = timedelta(seconds=1)
#: How long a queue an interactive request may join (it then waits for its slot).
INTERACTIVE_QUEUE = timedelta(seconds=30)
#: A next slot further ahead than this comes from a clock running ahead: it is ignored.
SKEWED = 2 * INTERACTIVE_QUEUE
#: The first pause after throttling without ``Retry-After``; it doubles while throttling repeats.
PAUSE_BASE = timedelta(seconds=60)
PAUSE_MAX = timedelta(hours=1)
#: A pause shorter than this is not worth the round trip (``Retry-After: 0``).
PAUSE_MIN = timedelta(seconds=5)
#: Throttling this long after the previous one ended starts a fresh streak.
STREAK_RESET = timedelta(hours=1)


class Priority(StrEnum):
    """Who is asking: a person waiting (sync now, linking) or the poll schedule."""

    INTERACTIVE = "interactive"
    BACKGROUND = "background"


@dataclass(frozen=True)
class BudgetState:
    """One egress address's budget, as stored (all times UTC)."""

    next_slot_at: datetime | None = None
    paused_until: datetime | None = None
    throttle_streak: int = 0
    last_throttled_at: datetime | None = None

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until


@dataclass(frozen=True)
class Admission:
    """The answer to one request for a slot.

    Granted: send at ``at`` (now or a little later) and store ``state``. Refused: ask again at
    ``at``; ``reason`` is ``throttled`` (the address is paused until ``at``) or ``busy`` (the
    queue is too long for this priority).
    """

    granted: bool
    at: datetime
    state: BudgetState
    reason: str = "ok"


def spacing(rate: float) -> timedelta:
    """The time between two requests at ``rate`` per second."""
    if rate <= 0:
        raise ValueError("a request budget needs a rate above 0")
    return timedelta(seconds=1 / rate)


def queue_limit(priority: Priority) -> timedelta:
    return INTERACTIVE_QUEUE if priority is Priority.INTERACTIVE else BACKGROUND_QUEUE


def admit(state: BudgetState, now: datetime, *, rate: float, priority: Priority) -> Admission:
    """Grant the next slot, or say when to ask again (see the module docstring)."""
    if state.paused(now):
        assert state.paused_until is not None
        return Admission(False, state.paused_until, state, "throttled")
    slot = max(state.next_slot_at or now, now)
    if slot - now > SKEWED + spacing(rate):
        # No queue is that long: the slot was granted by a replica whose clock runs ahead.
        # Waiting for it would stall every replica until real time caught up.
        slot = now
    limit = queue_limit(priority)
    if slot - now > limit:
        return Admission(False, slot - limit, state, "busy")
    return Admission(True, slot, replace(state, next_slot_at=slot + spacing(rate)))


def pause_for(streak: int) -> timedelta:
    """The pause after the ``streak``-th throttling in a row that came without Retry-After."""
    pause: timedelta = PAUSE_BASE * (2 ** min(max(streak - 1, 0), 12))
    return min(pause, PAUSE_MAX)


def throttled(state: BudgetState, now: datetime, retry_after: float | None) -> BudgetState:
    """The state after a request met throttling at ``now``: the whole address pauses.

    Several requests in flight may meet the same throttling; a pause already running that
    ends later is kept, and they count as one in the streak.
    """
    if state.paused(now):
        return state
    ended = state.paused_until or state.last_throttled_at
    repeat = ended is not None and now - ended < STREAK_RESET
    streak = state.throttle_streak + 1 if repeat else 1
    if retry_after is not None:
        pause = max(timedelta(seconds=retry_after), PAUSE_MIN)
    else:
        pause = pause_for(streak)
    return replace(state, paused_until=now + pause, throttle_streak=streak, last_throttled_at=now)


class RequestGate(Protocol):
    """What the Peloton client asks before each request and tells after throttling."""

    def acquire(self, what: str) -> Awaitable[None]:
        """Wait for a slot; raise :class:`~service.peloton.errors.RateLimited` if the address
        is paused (or the queue stays too long for this caller)."""
        ...

    def throttled(self, retry_after: float | None, what: str) -> Awaitable[None]:
        """Peloton throttled ``what``: pause every request from this address."""
        ...
