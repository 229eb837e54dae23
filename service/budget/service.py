"""The Peloton request budget shared by every replica through the database.

One row per egress address (``PELOSYNC_PELOTON_EGRESS``) holds the budget's state; the
decisions are the pure functions of :mod:`service.peloton.budget`. Each change is a
compare-and-set on the row's version (read, decide, ``UPDATE … WHERE version = v``), which
works the same on PostgreSQL and SQLite: of two replicas deciding at once, one wins and the
other decides again on the new state. Every Peloton API request costs two short statements.

Replicas compare slot times with their own clocks: keep them in sync (NTP), as for leases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.budget.models import PelotonBudget
from service.budget.repository import BudgetRepository
from service.peloton.budget import BudgetState, Priority, admit, spacing, throttled
from service.peloton.errors import PelotonThrottled

log = structlog.get_logger(__name__)

#: A waiting request looks at the budget again at least this often (a pause may have begun).
RECHECK = timedelta(seconds=5)
#: A request woken this much after its slot (the process stalled) takes a new one.
LATE = timedelta(milliseconds=50)


@dataclass(frozen=True)
class BudgetView:
    """What the budget looks like now: for /readyz, /metrics and the dashboard."""

    egress: str
    rate: float
    paused_until: datetime | None
    throttle_streak: int
    last_throttled_at: datetime | None
    last_throttle: str | None
    throttles: int
    requests: dict[str, int]
    backlog_s: float  # how far ahead slots are already granted

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until


def _state(row: PelotonBudget) -> BudgetState:
    return BudgetState(
        next_slot_at=row.next_slot_at,
        paused_until=row.paused_until,
        throttle_streak=row.throttle_streak,
        last_throttled_at=row.last_throttled_at,
    )


class SharedBudget:
    """The budget of this replica's egress address; hand :meth:`gate` to Peloton clients."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        egress: str,
        rate: float,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sessions = sessions
        self.egress = egress
        self.rate = rate
        self.clock = clock
        self.sleep = sleep

    def gate(self, priority: Priority) -> BudgetGate:
        """A :class:`~service.peloton.budget.RequestGate` asking with ``priority``."""
        return BudgetGate(self, priority)

    async def _read(self) -> PelotonBudget | None:
        async with self.sessions() as session:
            return await BudgetRepository(session).get(self.egress)

    async def _row(self) -> PelotonBudget:
        """The row, created first if this is the address's first request."""
        row = await self._read()
        if row is not None:
            return row
        async with self.sessions() as session, session.begin():
            await BudgetRepository(session).ensure(self.egress)
        async with self.sessions() as session:
            row = await BudgetRepository(session).get(self.egress)
        assert row is not None
        return row

    async def view(self) -> BudgetView:
        """The budget now. Reading never writes (pages read it inside their own transaction;
        on SQLite a second writer would wait for it): before the first request there is no
        row, and the view is of an untouched budget."""
        row = await self._read() or PelotonBudget(
            egress=self.egress,
            throttle_streak=0,
            throttles=0,
            requests_interactive=0,
            requests_background=0,
            version=0,
        )
        now = self.clock()
        return BudgetView(
            egress=self.egress,
            rate=self.rate,
            paused_until=row.paused_until if row.paused_until and row.paused_until > now else None,
            throttle_streak=row.throttle_streak,
            last_throttled_at=row.last_throttled_at,
            last_throttle=row.last_throttle,
            throttles=row.throttles,
            requests={
                Priority.INTERACTIVE.value: row.requests_interactive,
                Priority.BACKGROUND.value: row.requests_background,
            },
            backlog_s=max((row.next_slot_at - now).total_seconds(), 0.0)
            if row.next_slot_at
            else 0.0,
        )

    async def paused_until(self) -> datetime | None:
        """When the current pause ends, or None if requests may go."""
        return (await self.view()).paused_until

    async def check(self) -> None:
        """Raise :class:`PelotonThrottled` if the address is paused (before interactive work
        that would only meet the pause halfway)."""
        until = await self.paused_until()
        if until is not None:
            raise PelotonThrottled(until, self.clock())

    async def acquire(self, priority: Priority, what: str) -> None:
        """Wait for a slot for one request; :class:`PelotonThrottled` while paused."""
        counter = (
            "requests_interactive" if priority is Priority.INTERACTIVE else "requests_background"
        )
        while True:
            row = await self._row()
            now = self.clock()
            decision = admit(_state(row), now, rate=self.rate, priority=priority)
            if decision.reason == "throttled":
                raise PelotonThrottled(decision.at, now)
            if not decision.granted:
                await self.sleep(min(decision.at - now, RECHECK).total_seconds())
                continue
            async with self.sessions() as session, session.begin():
                won = await BudgetRepository(session).change(
                    self.egress,
                    row.version,
                    next_slot_at=decision.state.next_slot_at,
                    **{counter: getattr(PelotonBudget, counter) + 1},
                )
            if not won:
                continue  # another replica took a slot meanwhile: decide again
            wait = (decision.at - self.clock()).total_seconds()
            if wait <= 0:
                return
            await self.sleep(wait)
            if self.clock() - decision.at <= max(spacing(self.rate) / 2, LATE):
                return
            # This process stalled past its slot: sent now, the request could leave together
            # with the next slot's. The slot is lost; take a new one.

    async def throttled(self, retry_after: float | None, what: str) -> None:
        """Peloton throttled ``what``: pause every request from this address."""
        while True:
            row = await self._row()
            now = self.clock()
            state = throttled(_state(row), now, retry_after)
            if state == _state(row):
                return  # already paused by someone else's throttled request
            async with self.sessions() as session, session.begin():
                won = await BudgetRepository(session).change(
                    self.egress,
                    row.version,
                    paused_until=state.paused_until,
                    throttle_streak=state.throttle_streak,
                    last_throttled_at=state.last_throttled_at,
                    last_throttle=what[:500],
                    throttles=PelotonBudget.throttles + 1,
                )
            if won:
                log.warning(
                    "peloton.budget.paused",
                    egress=self.egress,
                    until=state.paused_until,
                    streak=state.throttle_streak,
                    what=what,
                )
                return


@dataclass(frozen=True)
class BudgetGate:
    """The shared budget seen by one Peloton client (one priority)."""

    budget: SharedBudget
    priority: Priority

    async def acquire(self, what: str) -> None:
        await self.budget.acquire(self.priority, what)

    async def throttled(self, retry_after: float | None, what: str) -> None:
        await self.budget.throttled(retry_after, what)
