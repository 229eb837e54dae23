"""SQL for accounts and sync runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service import leases
from service.accounts.models import Account, AccountStatus, SyncRun
from service.deliveries.models import Delivery
from service.workouts.models import Workout


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, account_id: int) -> Account | None:
        return await self.session.get(Account, account_id)

    async def by_peloton_user(self, peloton_user_id: str) -> Account | None:
        stmt = select(Account).where(Account.peloton_user_id == peloton_user_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def all(self) -> list[Account]:
        return list((await self.session.execute(select(Account).order_by(Account.id))).scalars())

    async def add(self, account: Account) -> Account:
        self.session.add(account)
        await self.session.flush()
        return account

    async def delete(self, account: Account) -> None:
        await self.session.delete(account)
        await self.session.flush()

    async def claim_due(
        self, *, owner: str, now: datetime, lease: timedelta, limit: int
    ) -> tuple[list[int], int]:
        """Lease accounts whose poll is due (see :mod:`service.leases`)."""
        due = and_(
            Account.paused.is_(False),
            Account.status != AccountStatus.NEEDS_REAUTH,
            Account.next_poll_at <= now,
        )
        return await leases.claim(
            self.session,
            Account,
            due=due,
            order_by=Account.next_poll_at,
            owner=owner,
            now=now,
            lease=lease,
            limit=limit,
        )

    async def claim_one(
        self, account_id: int, *, owner: str, now: datetime, lease: timedelta
    ) -> bool:
        """Lease one account now whatever its schedule ("sync now"); False if it is busy."""
        due = and_(Account.id == account_id, Account.status != AccountStatus.NEEDS_REAUTH)
        ids, _ = await leases.claim(
            self.session,
            Account,
            due=due,
            order_by=Account.next_poll_at,
            owner=owner,
            now=now,
            lease=lease,
            limit=1,
        )
        return bool(ids)

    async def finish(self, account_id: int, owner: str, **values: Any) -> bool:
        """Write a poll's outcome and release the lease, if ``owner`` still holds it."""
        return await leases.release(self.session, Account, account_id, owner, **values)

    async def extend_lease(self, account_id: int, owner: str, until: datetime) -> bool:
        return await leases.extend(self.session, Account, account_id, owner, until)

    async def record_backfill(
        self, account_id: int, owner: str, found: int, reached: datetime | None
    ) -> None:
        """A backfill's progress so far, if ``owner`` still holds the account's lease."""
        await self.session.execute(
            update(Account)
            .where(Account.id == account_id, Account.lease_owner == owner)
            .values(backfill_found=found, backfill_reached=reached)
            .execution_options(synchronize_session=False)
        )

    async def save_tokens(
        self, account_id: int, tokens_encrypted: str, expires_at: datetime | None
    ) -> None:
        """Persist rotated tokens whoever holds the lease: losing them would lock us out."""
        await self.session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(tokens_encrypted=tokens_encrypted, token_expires_at=expires_at)
            .execution_options(synchronize_session=False)
        )

    async def save_login_method(
        self, account_id: int, auth_method: str, credentials_encrypted: str
    ) -> None:
        """Remember which login method works (and the credentials that name it)."""
        await self.session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(auth_method=auth_method, credentials_encrypted=credentials_encrypted)
            .execution_options(synchronize_session=False)
        )

    async def workout_counts(self, account_ids: list[int]) -> dict[int, int]:
        if not account_ids:
            return {}
        stmt = (
            select(Workout.account_id, func.count())
            .where(Workout.account_id.in_(account_ids))
            .group_by(Workout.account_id)
        )
        return {row[0]: row[1] for row in await self.session.execute(stmt)}

    async def page(self, *, after_id: int | None, limit: int) -> list[Account]:
        """Accounts in id order after ``after_id``, up to ``limit``."""
        stmt = select(Account).order_by(Account.id).limit(limit)
        if after_id is not None:
            stmt = stmt.where(Account.id > after_id)
        return list((await self.session.execute(stmt)).scalars())

    async def workout_times(
        self, account_id: int, since: datetime
    ) -> list[tuple[datetime, datetime | None]]:
        """(start, end) of the account's workouts started since ``since``: its habits."""
        stmt = select(Workout.started_at, Workout.ended_at).where(
            Workout.account_id == account_id, Workout.started_at >= since
        )
        return [(row[0], row[1]) for row in await self.session.execute(stmt)]

    async def delivery_counts(self, account_id: int) -> dict[str, int]:
        """The account's deliveries by state."""
        stmt = (
            select(Delivery.state, func.count())
            .join(Workout, Workout.id == Delivery.workout_id)
            .where(Workout.account_id == account_id)
            .group_by(Delivery.state)
        )
        return {row[0]: row[1] for row in await self.session.execute(stmt)}

    # --- sync runs ------------------------------------------------------------------------

    async def add_run(self, run: SyncRun) -> SyncRun:
        self.session.add(run)
        await self.session.flush()
        return run

    async def run_count(self, account_id: int) -> int:
        stmt = select(func.count()).where(SyncRun.account_id == account_id)
        return int((await self.session.execute(stmt)).scalar_one())

    async def runs(
        self, account_id: int, *, limit: int = 50, before_id: int | None = None
    ) -> list[SyncRun]:
        stmt = select(SyncRun).where(SyncRun.account_id == account_id)
        if before_id is not None:
            stmt = stmt.where(SyncRun.id < before_id)
        stmt = stmt.order_by(SyncRun.id.desc()).limit(limit)
        return list((await self.session.execute(stmt)).scalars())
