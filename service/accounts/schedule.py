"""When to poll an account next: pure functions of what is known about its rider.

The next poll comes from:

* **the rider's usual hours.** Over the last :data:`HABIT_WINDOW`, the hours (UTC) the rider's
  workouts covered make a profile; each hour's interval is ``base / sqrt(24 × share)`` (the
  share smoothed over neighbouring hours, with a floor), so the hours the rider usually works
  out are polled more often and the others less. The square root is what minimises the mean
  wait for a given number of polls; a rider who rides at any hour gets ``base`` everywhere, and
  any rider with habits gets fewer polls per day than that.
* **inactivity.** A rider with no workout for :data:`INACTIVE_AFTER` is polled less and less
  often (twice as seldom per idle week), down to once per ``maximum``.
* **a class in progress.** Two minutes after its expected end.
* **limits.** Never sooner than ``minimum`` after a poll, never later than ``maximum``.
* **spreading.** Each account keeps a fixed phase (from its id) on a grid of its interval, so
  accounts polled together (at start-up, after an outage or a throttling pause) drift apart
  at their next poll instead of staying bunched, and restarts change nothing.

An account with its own interval (``poll_interval_s``) is polled at that interval, whatever
its habits (classes in progress and the limits still apply).

What a poll's outcome changes on its account is :func:`after_poll`; when the account is polled
next after it, :func:`next_poll_after` (failures back off exponentially, a throttling pause is
waited out, a capped backfill goes on at once). The poll engine decides with them, then writes.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.accounts.models import AccountStatus, PollOutcome

HABIT_WINDOW = timedelta(days=56)
#: Fewer workouts than this in the window: habits are not known yet, poll at ``base``.
HABIT_MIN_WORKOUTS = 4
#: Share of each hour's weight that is spread evenly over the day (riders break habits).
HABIT_FLOOR = 0.15
#: How far (hours, one standard deviation) that share reaches around the usual hours.
HABIT_SPREAD_HOURS = 4.0
#: An active rider's quietest hours are polled at most this many times more seldom than base.
HABIT_MAX_STRETCH = 2.0
INACTIVE_AFTER = timedelta(days=14)
#: How long after a class's expected end to look for it.
AFTER_CLASS_END = timedelta(minutes=2)
#: A class whose length is unknown is expected to last this long.
DEFAULT_CLASS = timedelta(hours=1)

#: How much earlier than its interval a poll may come, to move onto the account's phase.
ALIGN_PULL = 0.1
#: After a failed poll: wait this long, doubled with each failure in a row, up to the maximum
#: (and never longer than the account's interval).
FAILURE_BACKOFF_BASE = timedelta(minutes=1)
FAILURE_BACKOFF_MAX = timedelta(hours=6)
#: A poll that left work (a backfill or the per-poll cap) comes back after this long: behind
#: every account already due.
MORE_WORK_DELAY = timedelta(seconds=1)

_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)

Interval = tuple[timedelta, ...]  # 24 entries: the interval during each UTC hour


@dataclass(frozen=True)
class PollPolicy:
    """The operator's limits (``PELOSYNC_POLL_INTERVAL``, ``_MIN_INTERVAL``, ``_MAX_INTERVAL``)."""

    base: timedelta = timedelta(hours=1)
    minimum: timedelta = timedelta(minutes=5)
    maximum: timedelta = timedelta(hours=4)

    def clamp(self, interval: timedelta) -> timedelta:
        return min(max(interval, self.minimum), self.maximum)


def phase(key: int) -> float:
    """The account's fixed place in [0, 1) on its interval's grid (stable across restarts)."""
    return zlib.crc32(key.to_bytes(8, "big", signed=True)) / 2**32


def _circular_blur(weights: Sequence[float], sigma: float) -> list[float]:
    kernel = [(d, math.exp(-0.5 * (d / sigma) ** 2)) for d in range(-12, 12)]
    return [sum(k * weights[(h + d) % 24] for d, k in kernel) for h in range(24)]


def hour_shares(workouts: Sequence[tuple[datetime, datetime | None]]) -> list[float]:
    """Each UTC hour's share of the rider's workout time (sums to 1).

    Every workout counts once, spread over the hours its [start, end] covers, blurred by an
    hour (habits drift, and so does DST); :data:`HABIT_FLOOR` of it is blurred over several
    hours instead (rides at unusual times are still in the rider's day, not in their night).
    """
    weights = [0.0] * 24
    for start, end in workouts:
        stop = max(end or start + DEFAULT_CLASS, start + timedelta(minutes=1))
        hours = []
        t = start.replace(minute=0, second=0, microsecond=0)
        while t < stop:
            hours.append(t.hour)
            t += _HOUR
        for hour in hours:
            weights[hour] += 1 / len(hours)
    if sum(weights) == 0:
        return [1 / 24] * 24
    near, wide = _circular_blur(weights, 0.7), _circular_blur(weights, HABIT_SPREAD_HOURS)
    near_total, wide_total = sum(near), sum(wide)
    return [
        (1 - HABIT_FLOOR) * n / near_total + HABIT_FLOOR * w / wide_total
        for n, w in zip(near, wide, strict=True)
    ]


def hourly_intervals(
    workouts: Sequence[tuple[datetime, datetime | None]],
    now: datetime,
    policy: PollPolicy,
    *,
    active_since: datetime,
) -> Interval:
    """The interval for each UTC hour, from the rider's workouts (start, end) and the time
    the account was linked (``active_since``: a new account counts as active)."""
    recent = [w for w in workouts if now - HABIT_WINDOW <= w[0] <= now]
    last = max((w[0] for w in workouts), default=None)
    idle = now - max(last or active_since, active_since)
    slower = 1.0
    if idle > INACTIVE_AFTER:
        slower = 2 ** ((idle - INACTIVE_AFTER) / timedelta(days=7) + 1)
    if len(recent) < HABIT_MIN_WORKOUTS:
        return (policy.clamp(policy.base * slower),) * 24
    shares = hour_shares(recent)
    longest = policy.base * slower * HABIT_MAX_STRETCH
    return tuple(
        policy.clamp(min(policy.base * slower / math.sqrt(24 * s), longest)) for s in shares
    )


def _grid_at_or_before(t: datetime, interval: timedelta, place: float) -> datetime:
    offset = _EPOCH + interval * place
    steps = math.floor((t - offset) / interval)
    return offset + interval * steps


def _aligned(target: datetime, interval: timedelta, place: float) -> datetime:
    """``target``, moved earlier by up to :data:`ALIGN_PULL` of ``interval`` towards the
    account's grid: a few polls bring an account onto its phase and keep it there."""
    return max(_grid_at_or_before(target, interval, place), target - interval * ALIGN_PULL)


def next_poll(
    now: datetime,
    *,
    key: int,
    policy: PollPolicy,
    intervals: Interval,
    override: timedelta | None = None,
    expected_ends: Collection[datetime] = (),
) -> datetime:
    """When to poll the account ``key`` next, after a poll that ended at ``now``.

    The first grid point (the account's phase) within one interval of ``now``, looking ahead
    to hours with a shorter interval, or two minutes after a class in progress ends, whichever
    is sooner; never sooner than ``policy.minimum``, never later than ``policy.maximum``.
    """
    place = phase(key)
    if override is not None:
        intervals = (override,) * 24
    soonest = now + policy.minimum
    interval = intervals[now.hour]
    chosen = _aligned(now + interval, interval, place)
    boundary = now.replace(minute=0, second=0, microsecond=0) + _HOUR
    while boundary < chosen:
        later = intervals[boundary.hour]
        if later < interval:  # a busier hour starts before then: be polled early in it
            chosen = min(chosen, _aligned(boundary + later, later, place))
        boundary += _HOUR
    chosen = max(chosen, soonest)
    if expected_ends:
        chosen = min(chosen, max(min(expected_ends) + AFTER_CLASS_END, soonest))
    return min(chosen, now + policy.maximum)


def after_pause(paused_until: datetime, *, key: int, policy: PollPolicy) -> datetime:
    """When to poll an account whose poll met a throttling pause: at its phase within the
    minimum interval after the pause, so the accounts held back come back spread out (and the
    budget meters them) instead of all at once."""
    return paused_until + timedelta(seconds=1) + policy.minimum * phase(key)


def needs_listing(newest_id: str | None, *, known: bool, pending: Collection[str]) -> bool:
    """After the cheap probe (one workout, newest first): is a full listing needed?

    No if there is no workout at all, or the newest one is stored already, or it is the one
    in progress we are already watching: then nothing newer than what we know exists.
    """
    if newest_id is None:
        return False
    return not known and newest_id not in pending


def failure_backoff(failures: int) -> timedelta:
    """The wait after ``failures`` failed polls in a row (1, 2, 4... minutes, up to 6 h)."""
    delay: timedelta = FAILURE_BACKOFF_BASE * (2 ** min(max(failures - 1, 0), 16))
    return min(delay, FAILURE_BACKOFF_MAX)


@dataclass(frozen=True)
class AfterPoll:
    """What a poll's outcome changes on its account (:func:`after_poll`)."""

    #: The account's new status; ``None``: it stays as it is.
    status: AccountStatus | None
    #: Failed polls in a row; ``None``: unchanged.
    consecutive_failures: int | None
    #: A success: the time, the backfill's completion and the classes in progress are written.
    succeeded: bool
    #: Whether a next poll is scheduled (not while the account waits to be linked again).
    scheduled: bool


def after_poll(outcome: PollOutcome, *, failures: int) -> AfterPoll:
    """What a poll that ended with ``outcome`` changes on an account that had failed
    ``failures`` polls in a row before it.

    - ``ok``: active again, no failures;
    - ``rate_limited``: nothing but the error (Peloton throttles the address, not the account);
    - ``needs_reauth``: parked until linked again, no next poll;
    - ``error``: one more failure, status ``error``.
    """
    if outcome == PollOutcome.OK:
        return AfterPoll(AccountStatus.ACTIVE, 0, succeeded=True, scheduled=True)
    if outcome == PollOutcome.RATE_LIMITED:
        return AfterPoll(None, None, succeeded=False, scheduled=True)
    if outcome == PollOutcome.NEEDS_REAUTH:
        return AfterPoll(AccountStatus.NEEDS_REAUTH, None, succeeded=False, scheduled=False)
    if outcome == PollOutcome.ERROR:
        return AfterPoll(AccountStatus.ERROR, failures + 1, succeeded=False, scheduled=True)
    raise ValueError(f"a {outcome} poll changes nothing on its account")


def next_poll_after(
    outcome: PollOutcome,
    now: datetime,
    *,
    key: int,
    policy: PollPolicy,
    intervals: Interval,
    override: timedelta | None = None,
    failures: int = 0,
    more: bool = False,
    fetch_failed: bool = False,
    expected_ends: Collection[datetime] = (),
    paused_until: datetime | None = None,
) -> datetime:
    """When to poll the account ``key`` next, after a poll that ended at ``now`` with
    ``outcome`` (``failures``: failed polls in a row, this one included).

    - ``rate_limited``: after the pause (:func:`after_pause`);
    - another failure: :func:`failure_backoff`, never later than the account's interval;
    - a poll that stopped at a workout it could not fetch (``more`` and ``fetch_failed``): the
      first step of the backoff, or a workout Peloton keeps refusing is asked for every second;
    - a poll that left work (``more``): at once (:data:`MORE_WORK_DELAY`);
    - otherwise :func:`next_poll`.
    """
    interval = override or intervals[now.hour]
    if outcome == PollOutcome.RATE_LIMITED:
        return after_pause(max(paused_until or now, now), key=key, policy=policy)
    if outcome != PollOutcome.OK:
        return now + min(failure_backoff(failures), interval)
    if more and fetch_failed:
        return now + min(failure_backoff(1), interval)
    if more:
        return now + MORE_WORK_DELAY
    return next_poll(
        now,
        key=key,
        policy=policy,
        intervals=intervals,
        override=override,
        expected_ends=expected_ends,
    )
