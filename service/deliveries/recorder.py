"""Group commit for finished attempts: many attempts' writes share one transaction.

Each attempt ends with a few small writes: the delivery's new state (releasing its lease), its
attempt row, and the destination's health. Given their own session and transaction each, those
writes cost more than the delivery itself on a busy destination, make concurrent attempts queue
for SQLite's single writer lock (whose busy handler sleeps) and churn PostgreSQL connections when
the destination's concurrency exceeds the pool. Here one writer task takes whatever attempts
have finished meanwhile and writes them together: one transaction, and one statement for all
their delivery updates, one for all their attempt rows, one per destination they succeeded on.

On PostgreSQL (:func:`service.dialect.one_statement_results`), the outcomes without further
writes (successes; a failure also updates its destination) are written by one statement per
shape of values instead, outside a transaction (see
:meth:`~service.deliveries.repository.DeliveryRepository.finish_many`): a transaction's BEGIN,
COMMIT and separate statements cost a round trip each, about as much CPU as the HTTP request of
the delivery itself.

A write that fails takes its batch down with it, so the batch is then written again one
attempt per transaction: only the attempt whose write is broken sees the error.

A write that fails for want of the database (the connection dropped, the server refused it or
is restarting) is tried again for a while first: the attempt's outcome is known and its lease is
still held, and giving up would leave the delivery leased until the lease lapses
(``PELOSYNC_LEASE_SECONDS``), then send it again. The retried write checks the lease again, so
a commit that did land although its connection dropped before the answer is not written twice:
its lease is gone and its attempt row is there, so it reads as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import dialect
from service.db import autocommit_session
from service.deliveries.repository import DeliveryRepository, FinishedRow

log = structlog.get_logger(__name__)

#: Further writes of one attempt, run inside the batch's transaction.
Write = Callable[[AsyncSession], Awaitable[None]]

MAX_BATCH = 64

#: How long a write is tried again while the database is out of reach: a server restart or a
#: short failover. Bounded so a shutdown with the database gone still ends within the grace
#: the deployments give (the attempts' own drain takes up to 20 s of it).
RETRY_UNREACHABLE_S = 15.0
#: The waits between those tries, then the last one again.
RETRY_WAITS_S = (0.1, 0.25, 0.5, 1.0, 2.0)

# SQLSTATE prefixes of a server that cannot take the write now: connection exceptions (08...),
# shut down by an administrator or a crash (57P01, 57P02), still starting up (57P03).
_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03")


def unreachable(exc: BaseException) -> bool:
    """Whether a write failed for want of the database rather than because of what it wrote
    (only such a write is worth trying again as it is)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        state = getattr(exc.orig, "sqlstate", None)
        return isinstance(state, str) and state.startswith(_UNREACHABLE_STATES)
    # Connecting: refused, reset, timed out (the driver's own errors, not wrapped).
    return isinstance(exc, OSError | TimeoutError)


@dataclass(frozen=True)
class Outcome:
    """What one finished attempt writes, provided ``owner`` still holds the delivery's lease."""

    delivery_id: int
    owner: str
    values: dict[str, Any]  # the delivery's new column values (its lease is released)
    attempt: dict[str, Any]  # the delivery_attempts row
    destination_id: int
    healthy_at: datetime | None = None  # a success: the destination is healthy as of then
    then: Write | None = None  # more (the destination's upkeep after a failure)


# Performance machinery (benchmarks/deliver.py): the group commit of finished attempts, and on
# PostgreSQL its one-statement write path (``DeliveryRepository.finish_many``).
class Recorder:
    """Writes outcomes in shared transactions; ``await record(...)`` returns once committed."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        retry_for: float = RETRY_UNREACHABLE_S,
    ) -> None:
        self._sessions = sessions
        self.retry_for = retry_for
        self._queue: list[tuple[Outcome, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._bind = sessions.kw.get("bind")

    def writing(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Hold around a write transaction of the engine (these writes, the claims): the
        engine's one writer lock on SQLite (:func:`service.dialect.serialize_writes`)."""
        if self._bind is None:
            return contextlib.nullcontext()
        return dialect.serialize_writes(self._bind)

    async def record(self, outcome: Outcome) -> bool:
        """Write ``outcome``; False (and nothing written) if its lease had been lost."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((outcome, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="deliveries-recorder")
        # Shielded: an attempt cancelled at shutdown still has its outcome written.
        return await asyncio.shield(future)

    async def idle(self) -> None:
        """Wait until every queued outcome is written (before the runtime closes)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            # One deadline for the batch and its single writes: a database gone for good
            # costs the batch one retry period, not one per outcome.
            deadline = asyncio.get_running_loop().time() + self.retry_for
            try:
                held = await self._write_retrying([outcome for outcome, _ in batch], deadline)
            except Exception:
                for item in batch:  # find the broken one: each alone, in its own transaction
                    await self._write_alone(*item, deadline)
                continue
            for outcome, future in batch:
                if not future.done():
                    future.set_result(outcome.delivery_id in held)

    async def _write_alone(
        self, outcome: Outcome, future: asyncio.Future[bool], deadline: float
    ) -> None:
        try:
            held = await self._write_retrying([outcome], deadline, again=True)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(outcome.delivery_id in held)

    async def _write_retrying(
        self, outcomes: list[Outcome], deadline: float, *, again: bool = False
    ) -> set[int]:
        """:meth:`_write`, tried again while the database is out of reach, until ``deadline``."""
        loop = asyncio.get_running_loop()
        for wait in itertools.chain(RETRY_WAITS_S, itertools.repeat(RETRY_WAITS_S[-1])):
            try:
                return await self._write(outcomes, again=again)
            except Exception as exc:
                if not unreachable(exc) or loop.time() + wait > deadline:
                    raise
                log.warning(
                    "deliveries.recorder.retry",
                    error=type(exc).__name__,
                    outcomes=len(outcomes),
                    wait_s=wait,
                )
            again = True
            await asyncio.sleep(wait)
        raise AssertionError("not reached: the waits never run out")

    async def _write(self, outcomes: list[Outcome], *, again: bool = False) -> set[int]:
        """Write the outcomes whose leases are still held; returns the delivery ids of the
        outcomes that are written. ``again``: an earlier try may have committed although its
        answer was lost; such an outcome (its lease released, its attempt row stored) counts
        as written rather than as a lost lease."""
        if again or self._bind is None or not dialect.one_statement_results(self._bind):
            return await self._write_together(outcomes, again=again)
        plain = [
            FinishedRow(o.delivery_id, o.owner, o.destination_id, o.values, o.attempt, o.healthy_at)
            for o in outcomes
            if o.then is None
        ]
        held: set[int] = set()
        if plain:
            async with autocommit_session(self._sessions) as session:
                held = await DeliveryRepository(session).finish_many(plain)
        upkeep = [outcome for outcome in outcomes if outcome.then is not None]
        if upkeep:
            held |= await self._write_together(upkeep)
        return held

    async def _write_together(self, outcomes: list[Outcome], *, again: bool = False) -> set[int]:
        """:meth:`_write` in one transaction of several statements."""
        async with self.writing(), self._sessions() as session, session.begin():
            repo = DeliveryRepository(session)
            held: set[int] = set()
            for owner in {outcome.owner for outcome in outcomes}:
                ids = [outcome.delivery_id for outcome in outcomes if outcome.owner == owner]
                held |= await repo.held_leases(ids, owner)
            kept = [outcome for outcome in outcomes if outcome.delivery_id in held]
            if again and len(kept) < len(outcomes):
                landed = await repo.attempts_stored(
                    [outcome.attempt for outcome in outcomes if outcome.delivery_id not in held]
                )
            else:
                landed = set()
            if not kept:
                return held | landed
            await repo.release_many([(outcome.delivery_id, outcome.values) for outcome in kept])
            await repo.add_attempts([outcome.attempt for outcome in kept])
            healthy: dict[int, datetime] = {}
            for outcome in kept:
                if outcome.healthy_at is not None:
                    at = healthy.get(outcome.destination_id, outcome.healthy_at)
                    healthy[outcome.destination_id] = max(at, outcome.healthy_at)
            for destination_id, at in healthy.items():
                await repo.mark_destination_healthy(destination_id, at)
            for outcome in kept:
                if outcome.then is not None:
                    await outcome.then(session)
            return held | landed
