"""The poll job: each tick leases due accounts up to the free capacity and polls them."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from service.accounts.models import SyncTrigger
from service.accounts.repository import AccountRepository
from service.accounts.schedule import failure_backoff
from service.accounts.sync import AccountPoller, PollResult
from service.dialect import serialize_writes
from service.runtime import Runtime

log = structlog.get_logger(__name__)


class PollJob:
    """Runs polls as tasks so a slow account never holds up the tick or the others.

    A scheduled poll that finishes refills its slot at once: a tick only fills free slots, so
    waiting for the next one would leave capacity idle for up to ``tick_seconds``.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.poller = AccountPoller(runtime)
        self.running: dict[int, asyncio.Task[PollResult | None]] = {}
        self.reclaims = 0
        # One claim at a time: two overlapping ticks would both count the same free slots.
        self._tick_lock = asyncio.Lock()
        self._refill: asyncio.Task[None] | None = None
        self._refill_wanted = False
        self._batch = False  # run_once claims by itself
        self._stopping = False

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.rt.settings.lease_seconds)

    async def tick(self) -> list[int]:
        """Lease as many due accounts as there is room for and start polling them."""
        async with self._tick_lock:
            free = self.rt.settings.sync_concurrency - len(self.running)
            if free <= 0 or self._stopping:
                return []
            if await self.rt.budget.paused_until() is not None:
                # Peloton throttles this address: every poll would only meet the pause. The
                # accounts stay due and are polled, in order and within the budget, after it.
                return []
            async with (
                serialize_writes(self.rt.engine),  # SQLite: the engine's writers take turns
                self.rt.sessions() as session,
                session.begin(),
            ):
                ids, reclaimed = await AccountRepository(session).claim_due(
                    owner=self.rt.worker, now=self.rt.clock(), lease=self.lease, limit=free
                )
            if reclaimed:
                self.reclaims += reclaimed
                log.warning("sync.lease.reclaimed", count=reclaimed, worker=self.rt.worker)
            for account_id in ids:
                self._start(account_id, SyncTrigger.SCHEDULE)
            return ids

    async def sync_now(self, account_id: int) -> bool:
        """Poll one account right away unless someone is already polling it.

        Raises :class:`~service.peloton.errors.PelotonThrottled` (``Peloton is throttling us,
        retry at …``) while the address is paused.
        """
        await self.rt.budget.check()
        if account_id in self.running:
            return False
        async with self.rt.sessions() as session, session.begin():
            claimed = await AccountRepository(session).claim_one(
                account_id, owner=self.rt.worker, now=self.rt.clock(), lease=self.lease
            )
        if claimed:
            self._start(account_id, SyncTrigger.MANUAL)
        return claimed

    async def run_once(self, account_id: int | None = None) -> dict[int, PollResult | None]:
        """Poll every due account (or one, now) and wait for the results (``sync --once``).

        Raises :class:`~service.peloton.errors.PelotonThrottled` while the address is paused.
        """
        await self.rt.budget.check()
        tasks: dict[int, asyncio.Task[PollResult | None]] = {}
        self._batch = True
        try:
            if account_id is not None:
                if not await self.sync_now(account_id):
                    return {}
                tasks[account_id] = self.running[account_id]
            else:
                # A tick only fills free slots (a full one claims nothing): claim again as
                # polls finish, until nothing due is left.
                while True:
                    for claimed in await self.tick():
                        tasks[claimed] = self.running[claimed]
                    if not self.running:
                        break
                    await asyncio.wait(self.running.values(), return_when=asyncio.FIRST_COMPLETED)
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        finally:
            self._batch = False
        return {
            key: None if task.cancelled() or task.exception() else task.result()
            for key, task in tasks.items()
        }

    async def drain(self, grace: float) -> None:
        """Let polls in flight finish for up to ``grace`` seconds, then cancel and release."""
        self._stopping = True
        # A tick in flight starts its polls first, so they are drained too (unless the
        # database hangs it: then there is nothing to drain from it anyway).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace), self._tick_lock:
                pass
        if self._refill is not None and not self._refill.done():
            await asyncio.wait([self._refill], timeout=grace)
            if not self._refill.done():  # the database hangs it: nothing may outlive the runtime
                self._refill.cancel()
                await asyncio.gather(self._refill, return_exceptions=True)
        if not self.running:
            return
        tasks = list(self.running.values())
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _start(self, account_id: int, trigger: SyncTrigger) -> None:
        task = asyncio.create_task(self._run(account_id, trigger), name=f"poll-{account_id}")
        self.running[account_id] = task
        task.add_done_callback(lambda _t: self._finished(account_id, trigger))

    def _finished(self, account_id: int, trigger: SyncTrigger) -> None:
        self.running.pop(account_id, None)
        if trigger != SyncTrigger.SCHEDULE or self._batch or self._stopping:
            return
        self._refill_wanted = True
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._refill_slots(), name="poll-refill")

    async def _refill_slots(self) -> None:
        # Polls finishing while this claims ask for another round rather than wait a tick.
        while self._refill_wanted and not self._stopping:
            self._refill_wanted = False
            try:
                await self.tick()
            except Exception as exc:  # the scheduled tick will try again
                log.warning("sync.refill.failed", error=type(exc).__name__)
                return

    async def _run(self, account_id: int, trigger: SyncTrigger) -> PollResult | None:
        keeper = asyncio.create_task(self._keep_lease(account_id))
        try:
            return await self.poller.poll(account_id, trigger=trigger)
        except asyncio.CancelledError:
            await self._release(account_id, error=None)
            raise
        except Exception as exc:
            log.exception("sync.poll.crashed", account_id=account_id)
            await self._release(account_id, error=f"{type(exc).__name__}: {exc}")
            return None
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_lease(self, account_id: int) -> None:
        # Long polls (a big backfill, a slow Peloton) renew their lease well before it lapses.
        period = self.lease.total_seconds() / 3
        while True:
            await self.rt.keeper_sleep(period)
            async with self.rt.sessions() as session, session.begin():
                kept = await AccountRepository(session).extend_lease(
                    account_id, self.rt.worker, self.rt.clock() + self.lease
                )
            if not kept:
                log.warning("sync.lease.lost", account_id=account_id)
                return

    async def _release(self, account_id: int, error: str | None) -> None:
        """Give the account back at once (shutdown or a crash) instead of waiting for expiry."""
        values: dict[str, object] = {"next_poll_at": self.rt.clock()}
        if error is not None:
            values.update(last_error=error, next_poll_at=self.rt.clock() + failure_backoff(1))
        try:
            async with self.rt.sessions() as session, session.begin():
                await AccountRepository(session).finish(account_id, self.rt.worker, **values)
        except Exception:  # the lease will lapse on its own
            log.warning("sync.lease.release_failed", account_id=account_id)
