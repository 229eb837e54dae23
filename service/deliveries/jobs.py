"""The delivery job: each tick leases due deliveries per destination, within its concurrency.

Claiming per destination keeps destinations apart: a slow or dead one only ever occupies its
own ``concurrency`` slots, so the others' deliveries keep flowing. A tick loads everything its
claimed attempts need in one query. An attempt frees its slot for a refill tick (a quarter of the
concurrency at a time) once its outcome is written, or a success as soon as the destination has
answered: outcomes are written together by the runner's
:class:`~service.deliveries.recorder.Recorder`, and a delivery stays leased, so unclaimable,
until its outcome is written; a failure may disable or postpone the destination, which the next
claim must see.

Leases last ``PELOSYNC_LEASE_SECONDS`` and are renewed together, every third of that, while
their attempts run (a slow receiver's timeout, Strava's upload polling): a replica that dies
mid-delivery frees its deliveries for the others within one lease period, however long a
single attempt may take.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import structlog

from service.deliveries.engine import AttemptOutcome, DeliveryRunner
from service.deliveries.repository import DeliveryRepository, Loaded
from service.runtime import Runtime

log = structlog.get_logger(__name__)


class DeliveryJob:
    def __init__(self, runtime: Runtime, runner: DeliveryRunner | None = None) -> None:
        self.rt = runtime
        self.runner = runner or DeliveryRunner(runtime)
        self.running: dict[int, asyncio.Task[AttemptOutcome | None]] = {}
        self.per_destination: Counter[int] = Counter()
        self._concurrency: dict[int, int] = {}  # each destination's, as of its last claim
        self._tick_lock = asyncio.Lock()
        self._refill: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._none_running = asyncio.Event()  # wakes the lease keeper to end
        self._freed: set[int] = set()  # destinations whose attempts finished since a refill
        self._unsure: set[int] = set()  # claimed by a transaction whose commit failed

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.rt.settings.lease_seconds)

    async def tick(self) -> list[int]:
        async with self._tick_lock:
            return await self._claim_and_start()

    async def _claim_and_start(self, refill: list[int] | None = None) -> list[int]:
        """Claim and start due deliveries: of every due destination, or (a refill) only of
        the destinations in ``refill``, whose slots just freed: their claim checks that they
        are still enabled and not postponed, saving the search for due destinations."""
        now = self.rt.clock()
        claimed: list[tuple[int, int]] = []
        unsure = sorted(self._unsure)
        try:
            async with (
                self.runner.recorder.writing(),
                self.rt.sessions() as session,
                session.begin(),
            ):
                repo = DeliveryRepository(session)
                if unsure:
                    await repo.release_leases(unsure, self.rt.worker)
                if refill is None:
                    due = await repo.due_destinations(now)
                    for destination in due:
                        self._concurrency[destination.id] = destination.concurrency
                    candidates = [destination.id for destination in due]
                else:
                    candidates = refill
                for destination_id in candidates:
                    running = self.per_destination[destination_id]
                    free = self._concurrency.get(destination_id, 1) - running
                    if free <= 0:
                        continue
                    ids = await repo.claim_for_destination(
                        destination_id,
                        owner=self.rt.worker,
                        now=now,
                        lease=self.lease,
                        limit=free,
                        check_destination=refill is not None,
                    )
                    claimed.extend((delivery_id, destination_id) for delivery_id in ids)
                # One query for every claimed delivery's rows, rather than one per attempt.
                loaded = await repo.load_many([delivery_id for delivery_id, _ in claimed])
        except BaseException:
            # The commit may have landed although its answer was lost (the database went away):
            # give those leases back at the next tick rather than leave them until they lapse.
            self._unsure.update(delivery_id for delivery_id, _ in claimed)
            raise
        self._unsure.difference_update(unsure)
        # Only now, with the leases committed, do the attempts start.
        for delivery_id, destination_id in claimed:
            self.per_destination[destination_id] += 1
            self._start(delivery_id, destination_id, loaded.get(delivery_id))
        return [delivery_id for delivery_id, _ in claimed]

    async def run_until_idle(self, max_ticks: int = 1000) -> None:
        """Tick and wait until nothing is due or running (CLI ``--once`` and tests)."""
        for _ in range(max_ticks):
            if self._refill is not None and not self._refill.done():
                await asyncio.gather(self._refill, return_exceptions=True)  # ticking already
            else:
                await self.tick()
            if not self.running:
                # A refill scheduled by the last completion may still be waiting for the tick
                # lock: let it finish (and carry on if it started something) rather than leave
                # it claiming deliveries after the caller has closed the runtime.
                if self._refill is not None:
                    await asyncio.gather(self._refill, return_exceptions=True)
                if not self.running:
                    await self.runner.recorder.idle()
                    await self._stop_keeper()
                    return
                continue
            # Wait for an attempt to finish, and on a busy destination for a few: see _has_room.
            while self.running:
                await asyncio.wait(list(self.running.values()), return_when=asyncio.FIRST_COMPLETED)
                busy = [d for d, count in self.per_destination.items() if count > 0]
                if not busy or any(self._has_room(d) for d in busy):
                    break

    def _has_room(self, destination_id: int) -> bool:
        """Whether enough of a destination's slots are free to be worth a tick.

        A tick costs a few queries; run after every finished attempt it would cost about as
        much as the attempts themselves on a busy destination. So slots are refilled a quarter
        of the concurrency at a time (one at a time up to a concurrency of 7).
        """
        concurrency = self._concurrency.get(destination_id, 1)
        return concurrency - self.per_destination[destination_id] >= max(1, concurrency // 4)

    _stopping = False

    async def _quiet_tick(self) -> None:
        try:
            async with self._tick_lock:
                refill = sorted(d for d in self._freed if self._has_room(d))
                self._freed.difference_update(refill)
                if refill:
                    await self._claim_and_start(refill)
        except Exception as exc:  # the scheduled tick will try again
            log.warning("deliveries.refill.failed", error=type(exc).__name__)

    async def drain(self, grace: float) -> None:
        self._stopping = True
        if self._refill is not None:
            await asyncio.gather(self._refill, return_exceptions=True)
        if self.running:
            _, pending = await asyncio.wait(list(self.running.values()), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.runner.recorder.idle()  # outcomes of cancelled attempts are still written
        await self._stop_keeper()

    async def _stop_keeper(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper

    async def _keep_leases(self) -> None:
        """Renew the leases of the running attempts until none is left running."""
        period = self.lease.total_seconds() / 3
        while self.running:
            await self._pause(period)
            ids = sorted(self.running)
            if not ids:
                return
            try:
                async with (
                    self.runner.recorder.writing(),
                    self.rt.sessions() as session,
                    session.begin(),
                ):
                    kept = await DeliveryRepository(session).extend_leases(
                        ids, self.rt.worker, self.rt.clock() + self.lease
                    )
            except Exception as exc:  # the database is out of reach: try again next period
                log.warning("deliveries.lease.renew_failed", error=type(exc).__name__)
                continue
            # An attempt finishing meanwhile released its lease itself; others were taken over
            # (their outcome will not be written: the finishing write checks the owner).
            lost = [i for i in ids if i not in kept and i in self.running]
            if lost:
                log.warning("deliveries.lease.lost", delivery_ids=lost)

    async def _pause(self, period: float) -> None:
        """Wait ``period`` (on the runtime's clock) or until nothing is running, if sooner."""
        waits = [
            asyncio.ensure_future(self.rt.keeper_sleep(period)),
            asyncio.ensure_future(self._none_running.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def _start(self, delivery_id: int, destination_id: int, loaded: Loaded | None) -> None:
        # After a success the destination's slot is free at once (the outcome is still being
        # written, and the delivery stays leased until it is): the next delivery need not
        # wait for the write.
        slot_held = True

        def free_slot() -> None:
            nonlocal slot_held
            if not slot_held:
                return
            slot_held = False
            self.per_destination[destination_id] -= 1
            self._freed.add(destination_id)
            # Slots are free: refill them now rather than at the next scheduled tick.
            if (
                not self._stopping
                and self._has_room(destination_id)
                and (self._refill is None or self._refill.done())
            ):
                self._refill = asyncio.create_task(self._quiet_tick())

        task = asyncio.create_task(
            self._run(delivery_id, loaded, free_slot), name=f"deliver-{delivery_id}"
        )
        self.running[delivery_id] = task
        self._none_running.clear()
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep_leases(), name="deliveries-leases")

        def done(_task: asyncio.Task[AttemptOutcome | None]) -> None:
            self.running.pop(delivery_id, None)
            if not self.running:
                self._none_running.set()
            free_slot()  # unless a success freed it already

        task.add_done_callback(done)

    async def _run(
        self, delivery_id: int, loaded: Loaded | None, sent: Callable[[], None]
    ) -> AttemptOutcome | None:
        try:
            return await self.runner.attempt(delivery_id, loaded=loaded, sent=sent)
        except Exception:
            log.exception("deliveries.attempt.crashed", delivery_id=delivery_id)
            return None
