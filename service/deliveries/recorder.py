"""Group commit for finished attempts: many attempts' writes share one transaction.

Each attempt ends with a few small writes (the delivery's new state, its attempt row, maybe the
destination's health). Given their own session and transaction each, those writes cost more
than the delivery itself on a busy destination, make concurrent attempts queue for SQLite's
single writer lock (whose busy handler sleeps) and churn PostgreSQL connections when the
destination's concurrency exceeds the pool. Here one writer task takes whatever attempts have
finished meanwhile and writes them in one transaction.

A write that fails takes its batch down with it, so the batch is then written again one
attempt per transaction: only the attempt whose write is broken sees the error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

#: A write: the statements of one attempt, run inside the batch's transaction.
Write = Callable[[AsyncSession], Awaitable[Any]]

MAX_BATCH = 64


class Recorder:
    """Runs writes in shared transactions; ``await write(...)`` returns once committed."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, single_writer: bool = False
    ) -> None:
        self._sessions = sessions
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        # SQLite has one writer at a time and a waiting connection sleeps in its busy handler
        # (1, 2, 5, 10... ms): the engine's own write transactions take turns here instead.
        self._turns = asyncio.Lock() if single_writer else None

    def writing(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Hold around another write transaction of the engine (the claims)."""
        return self._turns if self._turns is not None else contextlib.nullcontext()

    async def write(self, work: Write) -> Any:
        """Run ``work(session)`` in a transaction shared with other writes; its result."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="deliveries-recorder")
        # Shielded: an attempt cancelled at shutdown still has its outcome written.
        return await asyncio.shield(future)

    async def idle(self) -> None:
        """Wait until every queued write is done (before the runtime closes)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                results = await self._run([work for work, _ in batch])
            except Exception:
                for item in batch:  # find the broken one: each alone, in its own transaction
                    await self._settle_alone(*item)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _settle_alone(self, work: Write, future: asyncio.Future[Any]) -> None:
        try:
            (result,) = await self._run([work])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    async def _run(self, works: list[Write]) -> list[Any]:
        async with self.writing(), self._sessions() as session, session.begin():
            return [await work(session) for work in works]
