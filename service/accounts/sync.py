"""Polling one Peloton account: list, fetch, store, create deliveries.

One poll runs while its worker holds the account's lease. The network part (listing and
fetching bundles) happens outside any transaction; everything it found is then written in ONE
transaction: the new workouts, their pending deliveries, the account's next poll, and the sync
run. Workouts are stored oldest first and only as an unbroken run, so the next poll's "stop at
the first known id" never steps over a workout that failed to download.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.models import Account, AccountStatus, PollOutcome, SyncRun, SyncTrigger
from service.accounts.repository import AccountRepository
from service.accounts.schedule import (
    HABIT_WINDOW,
    PollPolicy,
    after_poll,
    hourly_intervals,
    needs_listing,
    next_poll_after,
)
from service.accounts.tokens import client_for
from service.convert.pool import BundleSummary
from service.db import utcnow
from service.deliveries.repository import DeliveryRepository
from service.destinations.matching import formats_for
from service.destinations.repository import DestinationRepository
from service.dialect import serialize_writes
from service.errors import ConversionError, PelosyncError
from service.events import service as events
from service.peloton.budget import Priority
from service.peloton.client import PelotonClient
from service.peloton.errors import NeedsReauthentication, RateLimited
from service.peloton.models import Workout as PelotonWorkout
from service.peloton.origin import workout_origin
from service.runtime import Runtime
from service.workouts.repository import WorkoutRepository

log = structlog.get_logger(__name__)

BACKFILL_PAGE_SIZE = 100
INCREMENTAL_PAGE_SIZE = 20
PENDING_MAX_AGE = timedelta(days=2)  # give up re-checking a workout stuck IN_PROGRESS


@dataclass
class PollResult:
    outcome: PollOutcome = PollOutcome.OK
    found: int = 0
    new: int = 0
    in_progress: int = 0
    errors: int = 0
    error: str | None = None
    more: bool = False  # backfill or cap left work for an immediate next poll
    expected_ends: list[datetime] = field(default_factory=list)
    pending_ids: list[str] = field(default_factory=list)


@dataclass
class _Fetched:
    workout: PelotonWorkout
    bundle: dict[str, Any]
    summary: BundleSummary | None
    conversion_error: str | None


class AccountPoller:
    """Polls accounts for the runtime; one instance per process."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.policy = PollPolicy(
            base=timedelta(seconds=self.settings.poll_interval),
            minimum=timedelta(seconds=self.settings.poll_min_interval),
            maximum=timedelta(seconds=max(self.settings.poll_max_interval, 300)),
        )

    async def poll(
        self, account_id: int, *, trigger: SyncTrigger = SyncTrigger.SCHEDULE
    ) -> PollResult:
        """Poll an account whose lease this worker holds, and record the outcome."""
        started = self.rt.clock()
        async with self.rt.sessions() as session:
            account = await AccountRepository(session).get(account_id)
        if account is None:
            return PollResult(outcome=PollOutcome.GONE)
        # A person asked (sync now): ahead of the schedule's polls in the request budget.
        priority = Priority.INTERACTIVE if trigger == SyncTrigger.MANUAL else Priority.BACKGROUND
        client = client_for(self.rt, account, priority)
        result = PollResult()
        fetched: list[_Fetched] = []
        try:
            fetched = await self._collect(client, account, result)
        except RateLimited as exc:
            # The budget has paused the whole address (this request's throttling, or an
            # earlier one): come back after the pause, on the account's grid.
            result.outcome, result.error = PollOutcome.RATE_LIMITED, str(exc)
            result.more = False
            until = await self.rt.budget.paused_until() or self.rt.clock()
            return await self._finish(account, started, trigger, result, [], paused_until=until)
        except NeedsReauthentication as exc:
            result.outcome, result.error = PollOutcome.NEEDS_REAUTH, exc.message
        except PelosyncError as exc:
            result.outcome = PollOutcome.ERROR
            result.error = f"{type(exc).__name__}: {exc.message}"
        except (OSError, TimeoutError) as exc:  # defensive: the client wraps its own
            result.outcome, result.error = PollOutcome.ERROR, f"{type(exc).__name__}: {exc}"
        finally:
            await client.aclose()
        return await self._finish(account, started, trigger, result, fetched)

    # --- network ----------------------------------------------------------------------------

    async def _list(
        self, client: PelotonClient, account: Account, result: PollResult
    ) -> tuple[list[PelotonWorkout], list[PelotonWorkout]]:
        """(new complete workouts oldest first, workouts still in progress)."""
        user = account.peloton_user_id

        async def known(peloton_id: str) -> bool:
            async with self.rt.sessions() as session:
                found = await WorkoutRepository(session).known_ids(account.id, [peloton_id])
            return bool(found)

        complete: list[PelotonWorkout] = []
        in_progress: list[PelotonWorkout] = []
        pending = account.pending_workout_ids or []
        if account.backfill_complete:
            # The cheap probe: the newest workout alone says whether anything is new.
            newest = (await client.list_workouts(user, 0, 1)).data[:1]
            newest_id = newest[0].id if newest else None
            newest_known = newest_id is not None and await known(newest_id)
            if needs_listing(newest_id, known=newest_known, pending=pending):
                listing = await client.list_new_workouts(
                    user,
                    known_ids=known,
                    since=account.sync_since,
                    page_size=INCREMENTAL_PAGE_SIZE,
                )
                complete, in_progress = listing.complete, listing.in_progress
            elif newest and newest_id in pending:  # the class we watch: the probe has it
                (complete if newest[0].is_complete else in_progress).append(newest[0])
        else:
            # Backfill: walk back to the since-date, skipping what is already stored (a
            # previous capped poll stored the oldest part of the run).
            page: list[PelotonWorkout] = []
            async for workout in client.iter_workouts(user, page_size=BACKFILL_PAGE_SIZE):
                created = workout.created_at or workout.start_time
                if created is not None and created < account.sync_since:
                    break
                page.append(workout)
                if len(page) % BACKFILL_PAGE_SIZE == 0:
                    await self._record_backfill(account, page)
            await self._record_backfill(account, page)
            async with self.rt.sessions() as session:
                stored = await WorkoutRepository(session).known_ids(
                    account.id, [w.id for w in page if w.id]
                )
            for workout in page:
                if workout.id in stored:
                    continue
                (complete if workout.is_complete else in_progress).append(workout)
        # Workouts seen in progress earlier and not listed as new again: ask for each.
        listed = {w.id for w in complete} | {w.id for w in in_progress}
        for pending_id in pending:
            if pending_id in listed:
                continue
            async with self.rt.sessions() as session:
                if await WorkoutRepository(session).known_ids(account.id, [pending_id]):
                    continue
            workout = await client.workout(pending_id)
            (complete if workout.is_complete else in_progress).append(workout)
        result.found = len(complete) + len(in_progress)
        complete.sort(key=lambda w: (w.created_at or w.start_time or self.rt.clock(), w.id or ""))
        return complete, in_progress

    async def _record_backfill(self, account: Account, listed: list[PelotonWorkout]) -> None:
        """Show how far the backfill has walked (newest first: the last one is the oldest).

        Every backfill poll walks the list again, so the figures only ever grow (a later
        since-date starts them over: see ``service.update``)."""
        found = max(account.backfill_found or 0, len(listed))
        reached = account.backfill_reached
        oldest = (listed[-1].created_at or listed[-1].start_time) if listed else None
        if oldest is not None and (reached is None or oldest < reached):
            reached = oldest
        if (found, reached) == (account.backfill_found, account.backfill_reached):
            return
        account.backfill_found, account.backfill_reached = found, reached
        async with self._writing(), self.rt.sessions() as session, session.begin():
            await AccountRepository(session).record_backfill(
                account.id, self.rt.worker, found, reached
            )

    async def _collect(
        self, client: PelotonClient, account: Account, result: PollResult
    ) -> list[_Fetched]:
        complete, in_progress = await self._list(client, account, result)
        now = self.rt.clock()
        for workout in in_progress:
            started = workout.start_time or workout.created_at
            duration = workout.ride.duration if workout.ride and workout.ride.duration else None
            if started is not None and now - started < PENDING_MAX_AGE and workout.id:
                end = started + timedelta(seconds=duration or 3600)
                result.expected_ends.append(end)
                result.pending_ids.append(workout.id)
        result.in_progress = len(result.expected_ends)
        cap = self.settings.max_new_per_poll
        batch = complete[:cap]
        result.more = len(complete) > cap
        bundles = await asyncio.gather(
            *(client.fetch_bundle(w.id or "") for w in batch), return_exceptions=True
        )
        fetched: list[_Fetched] = []
        for workout, bundle in zip(batch, bundles, strict=True):
            if isinstance(bundle, BaseException):
                if isinstance(bundle, RateLimited | NeedsReauthentication):
                    if not fetched:
                        raise bundle
                    result.more = True
                    break
                if not isinstance(bundle, Exception):
                    raise bundle
                # Keep the unbroken oldest-first run; the rest waits for the next poll.
                result.errors += 1
                result.error = f"workout {workout.id}: {type(bundle).__name__}: {bundle}"
                result.more = True
                log.warning(
                    "sync.fetch.failed",
                    account_id=account.id,
                    workout_id=workout.id,
                    error=type(bundle).__name__,
                )
                break
            try:
                summary: BundleSummary | None = await self.rt.converter.summarize(bundle)
                problem = None
            except ConversionError as exc:
                summary, problem = None, exc.message
                log.warning(
                    "sync.workout.unconvertible",
                    account_id=account.id,
                    workout_id=workout.id,
                    error=problem,
                )
            fetched.append(_Fetched(workout, bundle, summary, problem))
        return fetched

    # --- storage ----------------------------------------------------------------------------

    async def _finish(
        self,
        account: Account,
        started: datetime,
        trigger: SyncTrigger,
        result: PollResult,
        fetched: list[_Fetched],
        *,
        paused_until: datetime | None = None,
    ) -> PollResult:
        """Decide what the poll changes on the account (``schedule.after_poll``, then
        ``schedule.next_poll_after``), and write it with what the poll found."""
        now = self.rt.clock()
        decision = after_poll(result.outcome, failures=account.consecutive_failures)
        values: dict[str, Any] = {"last_poll_at": now, "last_error": result.error}
        if decision.status is not None:
            values["status"] = decision.status
        if decision.consecutive_failures is not None:
            values["consecutive_failures"] = decision.consecutive_failures
        if decision.succeeded:
            values.update(
                last_success_at=now,
                backfill_complete=account.backfill_complete or not result.more,
                pending_workout_ids=sorted(set(result.pending_ids)),
            )
        async with self._writing(), self.rt.sessions() as session, session.begin():
            accounts = AccountRepository(session)
            await self._store(session, account, fetched, result)
            if decision.scheduled:
                # After storing: the workouts just found count among the rider's habits.
                times = await accounts.workout_times(account.id, now - HABIT_WINDOW)
                values["next_poll_at"] = next_poll_after(
                    result.outcome,
                    now,
                    key=account.id,
                    policy=self.policy,
                    intervals=hourly_intervals(
                        times, now, self.policy, active_since=account.created_at
                    ),
                    override=timedelta(seconds=account.poll_interval_s)
                    if account.poll_interval_s
                    else None,
                    failures=decision.consecutive_failures or 0,
                    more=result.more,
                    fetch_failed=result.errors > 0,
                    expected_ends=result.expected_ends,
                    paused_until=paused_until,
                )
            if not await accounts.finish(account.id, self.rt.worker, **values):
                # Our lease lapsed and another worker took the account: write nothing.
                await session.rollback()
                log.warning("sync.lease_lost", account_id=account.id, worker=self.rt.worker)
                result.outcome = PollOutcome.LEASE_LOST
                return result
            if (
                result.outcome == PollOutcome.NEEDS_REAUTH
                and account.status != AccountStatus.NEEDS_REAUTH
            ):
                await events.account_needs_reauth(session, account, result.error, now=now)
            await accounts.add_run(
                SyncRun(
                    account_id=account.id,
                    trigger=trigger,
                    worker=self.rt.worker,
                    started_at=started,
                    finished_at=now,
                    outcome=result.outcome,
                    found=result.found,
                    new=result.new,
                    in_progress=result.in_progress,
                    errors=result.errors,
                    error=result.error,
                )
            )
        log.info(
            "sync.poll.finished",
            account_id=account.id,
            outcome=result.outcome,
            found=result.found,
            new=result.new,
            in_progress=result.in_progress,
        )
        return result

    def _writing(self) -> contextlib.AbstractAsyncContextManager[object]:
        """SQLite has one writer at a time and its busy handler gives up after busy_timeout:
        many polls finishing together (a high sync_concurrency) queue on the engine's one
        writer lock instead, in order and without a time limit, with the deliveries' writes.
        PostgreSQL writes them side by side."""
        return serialize_writes(self.rt.engine)

    async def _store(
        self, session: AsyncSession, account: Account, fetched: list[_Fetched], result: PollResult
    ) -> None:
        workouts = WorkoutRepository(session)
        deliveries = DeliveryRepository(session)
        destinations = await DestinationRepository(session).enabled()
        # Delivered before the account was deleted and linked again: never sent again on its
        # own, even if the destination has lost it since (a replay or send by hand still does).
        sent = await deliveries.sent_before([item.workout.id or "" for item in fetched])
        for item in fetched:
            values = workout_values(account.id, item)
            workout_id = await workouts.add_new(values)
            if workout_id is None:
                continue  # stored meanwhile by another worker: its deliveries exist too
            result.new += 1
            if item.summary is None:
                continue
            if values["origin"] is not None and not account.include_external:
                log.info(
                    "sync.workout.external",
                    account_id=account.id,
                    workout_id=item.workout.id,
                    origin=values["origin"],
                )
            for destination in destinations:
                formats = [
                    f
                    for f in formats_for(
                        destination,
                        account.id,
                        item.summary,
                        origin=values["origin"],
                        include_external=account.include_external,
                    )
                    if (item.workout.id, destination.id, f) not in sent
                ]
                if formats:
                    await deliveries.create_pending(
                        workout_id, destination.id, formats, now=self.rt.clock()
                    )


def workout_values(account_id: int, item: _Fetched) -> dict[str, Any]:
    """Column values of a new workout row."""
    w, s = item.workout, item.summary
    raw = item.bundle["workout"]
    start = s.start if s else (w.start_time or w.created_at or utcnow())
    return {
        "account_id": account_id,
        "peloton_workout_id": w.id,
        "peloton_ride_id": s.ride_id if s else w.ride_id,
        "discipline": s.discipline if s else (w.fitness_discipline or "other"),
        "title": (s.title if s else (w.title or w.name or "Peloton workout"))[:300],
        "instructor": s.instructor if s else None,
        "started_at": start,
        "ended_at": s.end if s else w.end_time,
        "peloton_status": raw.get("status") or "COMPLETE",
        "origin": workout_origin(raw),
        "timezone": s.timezone if s else w.timezone,
        "is_outdoor": s.is_outdoor if s else bool(w.is_outdoor),
        "has_gps": s.has_gps if s else False,
        "duration_s": s.duration_s if s else None,
        "distance_m": s.distance_m if s else None,
        "calories_kcal": s.calories_kcal if s else None,
        "avg_heart_rate": s.avg_heart_rate if s else None,
        "max_heart_rate": s.max_heart_rate if s else None,
        "avg_power": s.avg_power if s else None,
        "total_work_j": s.total_work_j if s else None,
        "conversion_error": item.conversion_error,
        "raw_workout": raw,
        "raw_performance_graph": item.bundle["performance_graph"],
        "raw_ride_details": item.bundle.get("ride_details"),
    }
