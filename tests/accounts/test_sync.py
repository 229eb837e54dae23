"""Polling against the sandbox over loopback: backfill, incremental, in-progress, tokens,
failures. Every test runs on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from service.accounts.jobs import PollJob
from service.accounts.models import Account, AccountStatus, SyncRun
from service.accounts.tokens import decrypt_tokens
from service.deliveries.models import Delivery
from service.workouts.models import Workout
from tests.accounts.conftest import World


async def _workout_ids(world: World, account_id: int) -> list[str]:
    async with world.runtime.sessions() as session:
        rows = await session.execute(
            select(Workout.peloton_workout_id).where(Workout.account_id == account_id)
        )
        return sorted(rows.scalars())


async def _account(world: World, account_id: int) -> Account:
    async with world.runtime.sessions() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        return account


def _complete_ids(world: World, index: int = 0) -> list[str]:
    account = list(world.sandbox.accounts.values())[index]
    return sorted(w.workout_id for w in world.sandbox.workouts(account) if not w.in_progress)


async def test_first_sync_backfills_in_capped_rounds_then_stops(world: World) -> None:
    account = await world.link()
    job = PollJob(world.runtime)
    rounds = 0
    while True:
        rounds += 1
        results = await job.run_once(account.id)
        assert results[account.id] is not None
        assert results[account.id].outcome == "ok"  # type: ignore[union-attr]
        if not results[account.id].more:  # type: ignore[union-attr]
            break
        assert rounds < 10
    assert rounds == 3  # 12 workouts, at most 5 per poll
    assert await _workout_ids(world, account.id) == _complete_ids(world)
    stored = await _account(world, account.id)
    assert stored.backfill_complete
    # Done: the next poll is the schedule's (at least the minimum interval away), not at once.
    assert stored.next_poll_at > world.runtime.clock() + timedelta(minutes=4)
    async with world.runtime.sessions() as session:
        runs = (await session.execute(select(SyncRun).order_by(SyncRun.id))).scalars().all()
    assert [r.new for r in runs] == [5, 5, 2]


async def test_backfill_records_its_progress_as_it_walks_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.accounts import sync
    from service.accounts.repository import AccountRepository

    monkeypatch.setattr(sync, "BACKFILL_PAGE_SIZE", 5)  # 12 workouts: pages of 5, 5, 2
    seen: list[int] = []
    record = AccountRepository.record_backfill

    async def spy(
        self: AccountRepository, account_id: int, owner: str, found: int, at: datetime | None
    ) -> None:
        seen.append(found)
        await record(self, account_id, owner, found, at)

    monkeypatch.setattr(AccountRepository, "record_backfill", spy)
    account = await world.link()
    fresh = await _account(world, account.id)
    assert (fresh.backfill_found, fresh.backfill_reached) == (0, None)
    job = PollJob(world.runtime)
    first = (await job.run_once(account.id))[account.id]
    assert first is not None and first.more
    assert seen == [5, 10, 12]  # written page by page, while the walk goes on
    stored = await _account(world, account.id)
    sandbox_user = next(iter(world.sandbox.accounts.values()))
    oldest = min(w.created_at for w in world.sandbox.workouts(sandbox_user))
    assert not stored.backfill_complete and stored.backfill_found == 12
    assert stored.backfill_reached is not None
    assert int(stored.backfill_reached.timestamp()) == oldest
    while (await job.run_once(account.id))[account.id].more:  # type: ignore[union-attr]
        pass
    done = await _account(world, account.id)
    assert done.backfill_complete and done.backfill_found == 12
    assert seen == [5, 10, 12]  # the later walks found nothing more: nothing written


async def test_incremental_sync_fetches_only_new_workouts(world: World) -> None:
    account = await world.link(1)
    job = PollJob(world.runtime)
    while (await job.run_once(account.id))[account.id].more:  # type: ignore[union-attr]
        pass
    before = len(world.sandbox.log.entries) if hasattr(world.sandbox.log, "entries") else None
    sandbox_user = list(world.sandbox.accounts.values())[1]
    added = world.sandbox.add_workouts(sandbox_user, kind="cycling_class", count=2)
    result = (await job.run_once(account.id))[account.id]
    assert result is not None
    assert result.new == 2
    assert {w.workout_id for w in added} <= set(await _workout_ids(world, account.id))
    assert before is None or before >= 0
    # and nothing new: nothing stored
    result = (await job.run_once(account.id))[account.id]
    assert result is not None
    assert result.new == 0


async def test_in_progress_workout_is_stored_once_complete(world: World) -> None:
    account = await world.link(2)
    job = PollJob(world.runtime)
    while (await job.run_once(account.id))[account.id].more:  # type: ignore[union-attr]
        pass
    user = list(world.sandbox.accounts.values())[2]
    (live,) = world.sandbox.add_workouts(user, kind="cycling_class", in_progress=True)
    result = (await job.run_once(account.id))[account.id]
    assert result is not None
    assert result.in_progress == 1
    assert live.workout_id not in await _workout_ids(world, account.id)
    stored = await _account(world, account.id)
    assert stored.pending_workout_ids == [live.workout_id]
    # adaptive: re-polled soon after the class's expected end, not 30 minutes later
    assert stored.next_poll_at < world.runtime.clock() + timedelta(minutes=25)
    # a newer workout arrives first, then the live one completes
    world.sandbox.add_workouts(user, kind="strength", count=1)
    world.sandbox.complete(live.workout_id)
    result = (await job.run_once(account.id))[account.id]
    assert result is not None
    assert result.new == 2
    assert live.workout_id in await _workout_ids(world, account.id)
    assert (await _account(world, account.id)).pending_workout_ids == []


async def test_new_workouts_get_one_pending_delivery_per_format(world: World) -> None:
    await world.add_destination(["tcx", "fit", "gpx"])
    account = await world.link()
    job = PollJob(world.runtime)
    while (await job.run_once(account.id))[account.id].more:  # type: ignore[union-attr]
        pass
    async with world.runtime.sessions() as session:
        workouts = (await session.execute(select(Workout))).scalars().all()
        deliveries = (await session.execute(select(Delivery))).scalars().all()
    expected = sum(3 if w.has_gps else 2 for w in workouts if w.conversion_error is None)
    assert len(deliveries) == expected
    assert all(d.state == "pending" for d in deliveries)
    assert len({d.message_id for d in deliveries}) == len(deliveries)


async def test_rotated_refresh_token_is_persisted_encrypted(world: World) -> None:
    _, original = world.user(0)
    account = await world.link()
    linked = decrypt_tokens(
        world.runtime.secrets, (await _account(world, account.id)).tokens_encrypted
    )
    assert linked is not None
    world.sandbox.tokens.expire_all()
    job = PollJob(world.runtime)
    result = (await job.run_once(account.id))[account.id]
    assert result is not None
    assert result.outcome == "ok"
    stored = await _account(world, account.id)
    tokens = decrypt_tokens(world.runtime.secrets, stored.tokens_encrypted)
    assert tokens is not None
    assert tokens.refresh_token not in (original, linked.refresh_token)  # rotated, saved
    assert world.user(0)[1] == tokens.refresh_token  # the one the sandbox now accepts
    assert original not in (stored.tokens_encrypted or "")
    assert tokens.refresh_token not in (stored.tokens_encrypted or "")
    # a new process (new runtime, same database and key) carries on with the stored token
    world.sandbox.tokens.expire_all()
    result = (await PollJob(world.runtime).run_once(account.id))[account.id]
    assert result is not None
    assert result.outcome == "ok"


async def test_revoked_tokens_park_the_account_without_login_attempts(world: World) -> None:
    account = await world.link()
    user_id, _ = world.user(0)
    world.sandbox.tokens.revoke_user(user_id)
    result = (await PollJob(world.runtime).run_once(account.id))[account.id]
    assert result is not None
    assert result.outcome == "needs_reauth"
    stored = await _account(world, account.id)
    assert stored.status == AccountStatus.NEEDS_REAUTH
    # parked: no longer claimed by the scheduler
    async with world.runtime.sessions() as session, session.begin():
        stored_row = await session.get(Account, account.id)
        assert stored_row is not None
        stored_row.next_poll_at = world.runtime.clock() - timedelta(hours=1)
    assert await PollJob(world.runtime).tick() == []


async def test_rate_limit_postpones_without_counting_a_failure(world: World) -> None:
    account = await world.link()
    world.sandbox.faults.add("rate_limit", count=50, path_prefix="/api/user", retry_after=1200)
    result = (await PollJob(world.runtime).run_once(account.id))[account.id]
    assert result is not None
    assert result.outcome == "rate_limited"
    stored = await _account(world, account.id)
    assert stored.consecutive_failures == 0
    assert stored.status == AccountStatus.ACTIVE
    assert stored.next_poll_at >= world.runtime.clock() + timedelta(seconds=1100)


async def test_server_errors_back_off_exponentially(world: World) -> None:
    account = await world.link()
    world.sandbox.faults.add("server_error", count=1000, path_prefix="/api/user", status=503)
    job = PollJob(world.runtime)
    delays = []
    for _ in range(3):
        async with world.runtime.sessions() as session, session.begin():
            row = await session.get(Account, account.id)
            assert row is not None
            row.next_poll_at = world.runtime.clock()
        result = (await job.run_once(account.id))[account.id]
        assert result is not None
        assert result.outcome == "error"
        stored = await _account(world, account.id)
        delays.append((stored.next_poll_at - world.runtime.clock()).total_seconds())
    assert (await _account(world, account.id)).consecutive_failures == 3
    assert delays[0] < delays[1] < delays[2]
    assert (await _account(world, account.id)).status == AccountStatus.ERROR


async def test_sync_now_respects_a_held_lease(world: World) -> None:
    account = await world.link()
    other = PollJob(world.runtime)
    from service.accounts.repository import AccountRepository

    async with world.runtime.sessions() as session, session.begin():
        assert await AccountRepository(session).claim_one(
            account.id, owner="someone-else", now=world.runtime.clock(), lease=timedelta(minutes=5)
        )
    assert await other.sync_now(account.id) is False
    async with world.runtime.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(SyncRun))).scalar() == 0


@pytest.mark.parametrize("fault", ["malformed_json", "empty_body"])
async def test_malformed_peloton_responses_are_errors_not_crashes(world: World, fault: str) -> None:
    account = await world.link()
    world.sandbox.faults.add(fault, count=100, path_prefix="/api/user")  # type: ignore[arg-type]
    result = (await PollJob(world.runtime).run_once(account.id))[account.id]
    assert result is not None
    assert result.outcome == "error"
    assert (await _account(world, account.id)).last_error
    assert await _workout_ids(world, account.id) == []
