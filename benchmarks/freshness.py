"""Freshness against Peloton requests: today's fixed polling and the scheduler, side by side.

A discrete-event simulation on a simulated clock (no wall time, no network): 10,000 riders
with realistic habits over one week, with a throttling episode in the middle (Peloton's edge
answers every request from the address with 429, ``Retry-After: 60``, for 30 minutes).

Riders: most ride 3-5 times a week at one or two usual times of day (local time, US and
European time zones), some every day, some once or twice a week at any time, some not at all
for weeks. One ride in seven is at an unusual time. Classes last 10-60 minutes; Peloton lists a
workout as in progress from its start to its end, complete afterwards. Each rider's four weeks
before the simulated one are already synced (the scheduler learns habits from them).

Two schedulers poll the same rides:

* **fixed**: today's behaviour: every ``--interval`` (30 min) ± 10%, a listing of 20 per poll,
  a re-poll two minutes after an in-progress class ends, a throttled account postponed by 15
  minutes (only that account), and no request budget.
* **adaptive**: the service's scheduler. It calls the very functions the service calls:
  :func:`service.accounts.schedule.hourly_intervals`, :func:`~service.accounts.schedule.
  next_poll`, :func:`~service.accounts.schedule.after_pause` and :func:`~service.accounts.
  schedule.needs_listing` (the one-item probe first, the listing only when it finds something
  new), and every request goes through :func:`service.peloton.budget.admit` and, when
  throttled, :func:`service.peloton.budget.throttled` (the whole address pauses). At most
  ``--concurrency`` polls run at once (3 replicas x ``PELOSYNC_SYNC_CONCURRENCY`` 8).

A new complete workout costs three more requests (workout, performance graph, class plan) in
both. Printed: requests per hour (mean and busiest hour), the peak request rate (busiest
second, busiest minute) against the budget, the 429s met, and the time from a workout's end to
its fetch (its first delivery follows at once) as median, p90 and p99, then the ratios.

    python -m benchmarks.freshness [--accounts 10000] [--days 7] [--budget 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import math
import random
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from service.accounts.schedule import (
    Interval,
    PollPolicy,
    after_pause,
    hourly_intervals,
    needs_listing,
    next_poll,
)
from service.config import Settings
from service.peloton.budget import BudgetState, Priority, admit, throttled

START = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday, 00:00 UTC
HISTORY_WEEKS = 4
LATENCY = 0.3  # seconds per Peloton request
EPISODE = (3.5 * 86400, 3.5 * 86400 + 1800)  # Thursday 12:00-12:30 UTC: every request 429
EPISODE_RETRY_AFTER = 60.0
FETCH_REQUESTS = 3  # workout, performance graph, class plan
DURATIONS = ((600, 0.10), (900, 0.15), (1200, 0.25), (1800, 0.30), (2700, 0.15), (3600, 0.05))
ZONES = ((-8, 0.25), (-7, 0.08), (-6, 0.25), (-5, 0.30), (0, 0.06), (1, 0.06))


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def seconds(when: datetime) -> float:
    return (when - START).total_seconds()


@dataclass
class Rider:
    rides: list[tuple[float, float]]  # (start, end) in simulated seconds, sorted
    linked_at: float


def _pick(rng: random.Random, table: tuple[tuple[int, float], ...]) -> int:
    return rng.choices([v for v, _ in table], [w for _, w in table])[0]


def make_riders(count: int, seed: int) -> list[Rider]:
    """Riders with habits; rides from four weeks before the simulated week to its end."""
    rng = random.Random(seed)
    riders = []
    weeks = HISTORY_WEEKS + 1
    for _ in range(count):
        kind = rng.random()
        zone = _pick(rng, ZONES)
        usual = [rng.uniform(5.5, 21.0) for _ in range(rng.choice((1, 1, 2)))]
        rides: list[tuple[float, float]] = []
        quits_week = weeks  # inactive riders stop some weeks before the simulated one
        rides_per_week = (3, 5)
        if 0.60 <= kind < 0.75:
            rides_per_week = (7, 7)
        elif 0.75 <= kind < 0.87:
            rides_per_week = (1, 2)
            usual = []
        elif kind >= 0.87:
            rides_per_week = (2, 4)
            quits_week = rng.randint(0, HISTORY_WEEKS - 2)
        for week in range(-HISTORY_WEEKS, 1):
            if week + HISTORY_WEEKS >= quits_week:
                break
            for day in rng.sample(range(7), rng.randint(*rides_per_week)):
                if usual and rng.random() > 1 / 7:
                    hour = rng.choice(usual) + rng.gauss(0, 0.3)
                else:
                    hour = rng.uniform(6.0, 22.0)
                start = (week * 7 + day) * 86400 + (hour - zone) * 3600
                rides.append((start, start + _pick(rng, DURATIONS)))
        rides.sort()
        riders.append(Rider(rides, linked_at=-(HISTORY_WEEKS * 7 + 30) * 86400.0))
    return riders


@dataclass
class Stats:
    name: str
    per_second: Counter[int] = field(default_factory=Counter)
    requests: int = 0
    refused: int = 0  # answered 429
    waits: list[float] = field(default_factory=list)  # workout end -> fetched
    polls: int = 0
    missed: int = 0  # ended in the week, not fetched by its end

    def request(self, t: float) -> None:
        self.requests += 1
        self.per_second[int(t)] += 1


def throttling(t: float) -> bool:
    return EPISODE[0] <= t < EPISODE[1]


class World:
    """What Peloton lists for each rider at a time."""

    def __init__(self, riders: list[Rider]) -> None:
        self.riders = riders
        self.known: list[set[int]] = [
            {i for i, (s, e) in enumerate(r.rides) if e <= 0} for r in riders
        ]
        self.starts = [[s for s, _e in r.rides] for r in riders]

    def newest(self, a: int, t: float) -> int:
        """Index of the rider's newest workout started by ``t`` (-1: none yet)."""
        return bisect.bisect_right(self.starts[a], t) - 1

    def new(self, a: int, t: float) -> tuple[list[int], list[int]]:
        """(new complete, in progress) as a listing stopping at the first known one sees."""
        complete: list[int] = []
        running: list[int] = []
        rides, known = self.riders[a].rides, self.known[a]
        for i in range(self.newest(a, t), -1, -1):
            if i in known:
                break
            (complete if rides[i][1] <= t else running).append(i)
        return complete, running

    def fetched(self, a: int, indexes: list[int], t: float, stats: Stats, end: float) -> None:
        rides = self.riders[a].rides
        for i in indexes:
            self.known[a].add(i)
            if 0 <= rides[i][1] < end:
                stats.waits.append(t - rides[i][1])


def finish(world: World, stats: Stats, end: float) -> None:
    for a, rider in enumerate(world.riders):
        for i, (_s, e) in enumerate(rider.rides):
            if 0 <= e < end and i not in world.known[a]:
                stats.missed += 1


def simulate_fixed(riders: list[Rider], days: int, interval: float, seed: int) -> Stats:
    """Today's polling: see the module docstring."""
    rng = random.Random(seed)
    world, stats, end = World(riders), Stats("fixed 30 min"), days * 86400.0
    queue = [(rng.uniform(0, interval), a) for a in range(len(riders))]
    heapq.heapify(queue)
    while queue:
        t, a = heapq.heappop(queue)
        if t >= end:
            continue
        stats.polls += 1
        stats.request(t)
        if throttling(t):
            stats.refused += 1
            heapq.heappush(queue, (t + max(EPISODE_RETRY_AFTER, 900.0), a))
            continue
        complete, running = world.new(a, t)
        done = t + LATENCY
        for _ in range(len(complete) * FETCH_REQUESTS):
            stats.request(done)
            done += LATENCY
        world.fetched(a, complete, done, stats, end)
        following = t + interval * rng.uniform(0.9, 1.1)
        if running:
            soonest = min(riders[a].rides[i][1] for i in running) + 120
            following = min(following, max(soonest, t + 60))
        heapq.heappush(queue, (following, a))
    finish(world, stats, end)
    return stats


@dataclass
class Poll:
    account: int
    due: float
    needed: int = 1  # requests still to send
    stage: str = "probe"  # probe | fetch
    started: bool = False  # holds one of the concurrency slots
    complete: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)


class Adaptive:
    """The service's scheduler and request budget on the simulated clock."""

    def __init__(
        self, riders: list[Rider], days: int, policy: PollPolicy, budget: float, concurrency: int
    ) -> None:
        self.riders, self.policy, self.rate = riders, policy, budget
        self.world, self.stats = World(riders), Stats("adaptive")
        self.end = days * 86400.0
        self.budget = BudgetState()
        self.concurrency = concurrency
        self.running = 0
        self.waiting: deque[Poll] = deque()
        self.queue: list[tuple[float, int, Poll]] = []
        self.seq = 0
        self.pending: list[list[int]] = [[] for _ in riders]
        self.cache: dict[int, tuple[int, int, Interval]] = {}

    def intervals(self, a: int, t: float) -> Interval:
        rider, known = self.riders[a], self.world.known[a]
        key = (len(known), int(t // 86400))
        cached = self.cache.get(a)
        if cached is None or cached[:2] != key:
            times = [(at(s), at(e)) for i, (s, e) in enumerate(rider.rides) if i in known]
            now = at(t)
            value = hourly_intervals(times, now, self.policy, active_since=at(rider.linked_at))
            self.cache[a] = (*key, value)
            return value
        return cached[2]

    def push(self, t: float, poll: Poll) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (t, self.seq, poll))

    def schedule(self, a: int, when: datetime) -> None:
        self.push(seconds(when), Poll(a, seconds(when)))

    def run(self) -> Stats:
        for a in range(len(self.riders)):
            # A long-running deployment: each account's next poll is on its grid.
            now = at(0)
            self.schedule(
                a, next_poll(now, key=a, policy=self.policy, intervals=self.intervals(a, 0))
            )
        while self.queue:
            t, _, poll = heapq.heappop(self.queue)
            if t >= self.end:
                continue
            if not poll.started:
                if self.running >= self.concurrency:
                    self.waiting.append(poll)
                    continue
                self.running += 1
                poll.started = True
                self.stats.polls += 1
            self.step(t, poll)
        finish(self.world, self.stats, self.end)
        return self.stats

    def release(self, t: float) -> None:
        self.running -= 1
        if self.waiting:
            self.push(t, self.waiting.popleft())

    def step(self, t: float, poll: Poll) -> None:
        """Send the poll's next request (or wait for the budget)."""
        decision = admit(self.budget, at(t), rate=self.rate, priority=Priority.BACKGROUND)
        a = poll.account
        if not decision.granted:
            if decision.reason == "throttled":  # the poll ends: rate_limited
                self.release(t)
                self.schedule(
                    a,
                    after_pause(decision.at, key=a, policy=self.policy),
                )
            else:
                self.push(seconds(decision.at), poll)
            return
        self.budget = decision.state
        slot = seconds(decision.at)
        self.stats.request(slot)
        if throttling(slot):
            self.stats.refused += 1
            self.budget = throttled(self.budget, at(slot), EPISODE_RETRY_AFTER)
            self.release(slot)
            paused = self.budget.paused_until or at(slot)
            self.schedule(a, after_pause(paused, key=a, policy=self.policy))
            return
        done = slot + LATENCY
        if poll.stage == "probe":
            self.probe(done, poll)
        else:
            poll.needed -= 1
        if poll.needed > 0:
            self.push(done, poll)
            return
        self.world.fetched(a, poll.complete, done, self.stats, self.end)
        self.pending[a] = poll.running
        self.release(done)
        rides = self.riders[a].rides
        ends = [at(rides[i][1]) for i in poll.running]
        following = next_poll(
            at(done),
            key=a,
            policy=self.policy,
            intervals=self.intervals(a, done),
            expected_ends=ends,
        )
        self.schedule(a, following)

    def probe(self, t: float, poll: Poll) -> None:
        a = poll.account
        index = self.world.newest(a, t)
        newest = index if index >= 0 else None
        rides = self.riders[a].rides
        known = newest is not None and newest in self.world.known[a]
        pending = {str(i) for i in self.pending[a]}
        newest_id = None if newest is None else str(newest)
        if needs_listing(newest_id, known=known, pending=pending):
            poll.complete, poll.running = self.world.new(a, t)
            poll.needed = 1 + FETCH_REQUESTS * len(poll.complete)  # the listing, the fetches
        elif newest is not None and newest_id in pending:
            done = rides[newest][1] <= t
            poll.complete, poll.running = ([newest], []) if done else ([], [newest])
            poll.needed = FETCH_REQUESTS * len(poll.complete)
        else:
            poll.needed = 0
        poll.stage = "fetch"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def peak_minute(per_second: Counter[int]) -> float:
    minutes: Counter[int] = Counter()
    for second, n in per_second.items():
        minutes[second // 60] += n
    return max(minutes.values()) / 60


def report(results: list[Stats], days: int, budget: float) -> None:
    hours = days * 24
    rows: list[tuple[str, Callable[[Stats], str]]] = [
        ("requests / hour (mean)", lambda s: f"{s.requests / hours:,.0f}"),
        ("requests / hour (busiest hour)", lambda s: f"{_busiest_hour(s):,.0f}"),
        ("polls", lambda s: f"{s.polls:,}"),
        ("peak requests in 1 s", lambda s: f"{max(s.per_second.values())}"),
        ("peak rate over 1 min (req/s)", lambda s: f"{peak_minute(s.per_second):.2f}"),
        (f"seconds over budget ({budget:g} req/s)", lambda s: f"{_over(s, budget):,}"),
        ("requests answered 429", lambda s: f"{s.refused:,}"),
        ("workouts fetched", lambda s: f"{len(s.waits):,}"),
        ("end -> delivery median (min)", lambda s: f"{statistics.median(s.waits) / 60:.1f}"),
        ("end -> delivery p90 (min)", lambda s: f"{percentile(s.waits, 0.9) / 60:.1f}"),
        ("end -> delivery p99 (min)", lambda s: f"{percentile(s.waits, 0.99) / 60:.1f}"),
        ("not fetched by the week's end", lambda s: f"{s.missed:,}"),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'':{width}}  " + "  ".join(f"{s.name:>14}" for s in results))
    for label, cell in rows:
        print(f"{label:{width}}  " + "  ".join(f"{cell(s):>14}" for s in results))
    fixed, adaptive = results
    print(
        f"\nadaptive / fixed requests: {adaptive.requests / fixed.requests:.2f} (target <= 0.50); "
        f"never over budget: {_over(adaptive, budget) == 0}; "
        f"median {statistics.median(adaptive.waits) / 60:.1f} min (target < 10), "
        f"p90 {percentile(adaptive.waits, 0.9) / 60:.1f} min (target < 30)"
    )


def _busiest_hour(stats: Stats) -> int:
    hours: Counter[int] = Counter()
    for second, n in stats.per_second.items():
        hours[second // 3600] += n
    return max(hours.values())


def _over(stats: Stats, budget: float) -> int:
    """Seconds (aligned) in which more requests left than the budget allows."""
    return sum(1 for n in stats.per_second.values() if n > math.ceil(budget))


def main() -> None:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--budget", type=float, default=5.0, help="requests/s for the address")
    parser.add_argument("--interval", type=float, default=1800.0, help="today's interval (s)")
    parser.add_argument("--concurrency", type=int, default=3 * defaults.sync_concurrency)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    policy = PollPolicy(
        base=timedelta(seconds=defaults.poll_interval),
        minimum=timedelta(seconds=defaults.poll_min_interval),
        maximum=timedelta(seconds=defaults.poll_max_interval),
    )
    riders = make_riders(args.accounts, args.seed)
    rides = sum(1 for r in riders for s, e in r.rides if 0 <= e < args.days * 86400)
    print(
        f"{args.accounts:,} riders, {rides:,} rides in {args.days} simulated days; budget "
        f"{args.budget:g} req/s; policy base {policy.base}, min {policy.minimum}, max "
        f"{policy.maximum}; throttling {at(EPISODE[0]):%a %H:%M}-{at(EPISODE[1]):%H:%M} UTC\n"
    )
    started = time.perf_counter()
    fixed = simulate_fixed(riders, args.days, args.interval, args.seed)
    adaptive = Adaptive(riders, args.days, policy, args.budget, args.concurrency).run()
    report([fixed, adaptive], args.days, args.budget)
    print(f"\n(simulated in {time.perf_counter() - started:.0f} s of wall time)")


if __name__ == "__main__":
    main()
