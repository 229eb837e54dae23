"""SQL behind ``/metrics``: counts across every replica, read at scrape time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service import leases
from service.accounts.models import Account, AccountStatus, PollOutcome, SyncRun
from service.deliveries.models import Delivery, DeliveryState
from service.destinations.models import Destination
from service.dialect import text_before
from service.workouts.models import Workout

# The outcome of a poll that failed says which Peloton error it was.
ERROR_CLASS_BY_OUTCOME: dict[str, str] = {
    PollOutcome.RATE_LIMITED: "RateLimited",
    PollOutcome.NEEDS_REAUTH: "NeedsReauthentication",
}


class MetricsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def deliveries_by_state_and_kind(self) -> list[tuple[str, str, int]]:
        stmt = (
            select(Delivery.state, Destination.kind, func.count())
            .join(Destination, Destination.id == Delivery.destination_id)
            .group_by(Delivery.state, Destination.kind)
        )
        return [(row[0], row[1], row[2]) for row in await self.session.execute(stmt)]

    async def due_deliveries(self, now: datetime) -> int:
        """Pending deliveries due now and not being sent: the queue."""
        stmt = (
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.state == DeliveryState.PENDING,
                Delivery.next_attempt_at <= now,
                leases.lease_free(Delivery, now),
            )
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def accounts_by_status(self) -> list[tuple[str, bool, int]]:
        stmt = select(Account.status, Account.paused, func.count()).group_by(
            Account.status, Account.paused
        )
        return [(row[0], bool(row[1]), row[2]) for row in await self.session.execute(stmt)]

    async def due_accounts(self, now: datetime) -> int:
        stmt = (
            select(func.count())
            .select_from(Account)
            .where(
                Account.paused.is_(False),
                Account.status != AccountStatus.NEEDS_REAUTH,
                Account.next_poll_at <= now,
                leases.lease_free(Account, now),
            )
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def workouts_by_discipline(self) -> list[tuple[str, int]]:
        stmt = select(Workout.discipline, func.count()).group_by(Workout.discipline)
        return [(row[0], row[1]) for row in await self.session.execute(stmt)]

    async def polls_by_outcome(self) -> list[tuple[str, int]]:
        stmt = select(SyncRun.outcome, func.count()).group_by(SyncRun.outcome)
        return [(row[0] or "running", row[1]) for row in await self.session.execute(stmt)]

    async def peloton_errors(self) -> dict[str, int]:
        """Failed polls by the Peloton error class that ended them."""
        # Failed polls record "ClassName: message"; the class is what precedes the colon.
        prefix = text_before(SyncRun.error, ":")
        stmt = (
            select(SyncRun.outcome, prefix, func.count())
            .where(SyncRun.outcome.in_([PollOutcome.ERROR, *ERROR_CLASS_BY_OUTCOME]))
            .group_by(SyncRun.outcome, prefix)
        )
        errors: dict[str, int] = {}
        for outcome, error_class, count in await self.session.execute(stmt):
            name = ERROR_CLASS_BY_OUTCOME.get(outcome or "") or (error_class or "unknown")[:60]
            errors[name] = errors.get(name, 0) + count
        return errors
