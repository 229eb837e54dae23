"""SQL of the shared Peloton request budget."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.budget.models import PelotonBudget
from service.dialect import insert_ignoring_duplicates


class BudgetRepository:
    """SQL of the shared Peloton request budget (one row per egress address)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, egress: str) -> PelotonBudget | None:
        """The budget's row as stored now (``populate_existing``: never a cached copy)."""
        stmt = (
            select(PelotonBudget)
            .where(PelotonBudget.egress == egress)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def ensure(self, egress: str) -> None:
        """Create the budget's row unless another replica already did."""
        stmt = insert_ignoring_duplicates(self.session, PelotonBudget, ["egress"]).values(
            egress=egress,
            throttle_streak=0,
            throttles=0,
            requests_interactive=0,
            requests_background=0,
            version=0,
        )
        await self.session.execute(stmt)

    async def change(self, egress: str, version: int, **values: Any) -> bool:
        """Write ``values`` if the row is still at ``version`` (compare-and-set); False if
        another replica changed it first."""
        stmt = (
            update(PelotonBudget)
            .where(PelotonBudget.egress == egress, PelotonBudget.version == version)
            .values(version=version + 1, **values)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        return bool(result.rowcount)  # type: ignore[attr-defined]
