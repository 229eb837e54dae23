"""Fake time: a settable clock and a sleep that only records.

Production code takes its time from an injected ``clock() -> datetime`` (``Runtime.clock``,
the Peloton client, the fitness-service kinds) and waits through an injected ``sleep``; tests
give it these instead, so they walk through back-offs and lease periods without waiting.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

DEFAULT_START = datetime(2026, 3, 1, 12, 7, 30, tzinfo=UTC)


class FakeClock:
    """A UTC clock that stands still until a test moves it (only forwards, through
    :meth:`advance` or :meth:`set`; ``now`` may also be assigned outright).

    :meth:`sleep` is a sleep on this clock: it returns once the clock has moved on by the
    wanted time, so code waiting on it (a lease keeper) runs exactly when a test says so.
    """

    def __init__(self, now: datetime = DEFAULT_START) -> None:
        self.now = now
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        """The time as epoch seconds (the fakes' ``now``)."""
        return self.now.timestamp()

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move on by ``seconds`` (or any ``timedelta`` keywords); wakes due sleepers."""
        return self.set(self.now + timedelta(seconds=seconds, **delta))

    def set(self, when: datetime) -> datetime:
        """Move to ``when``; wakes due sleepers."""
        if when < self.now:
            raise AssertionError(f"the clock only moves forward ({when} < {self.now})")
        self.now = when
        for wake_at, waiter in self._sleepers:
            if wake_at <= when and not waiter.done():
                waiter.set_result(None)
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Wait until this clock has moved on by ``seconds``."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        entry = (self.now + timedelta(seconds=seconds), asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            self._sleepers.remove(entry)


class RecordingSleep:
    """Replaces ``asyncio.sleep``: records the wanted waits and waits for nothing. Given a
    clock, it also moves that clock on by each wait (as if the time had passed)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)


async def no_wait(_seconds: float) -> None:
    """A sleep that only yields to the event loop (retry back-offs in engine tests)."""
    await asyncio.sleep(0)
