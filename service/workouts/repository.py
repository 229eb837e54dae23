"""SQL for workouts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import insert_ignoring_duplicates
from service.workouts.models import Workout


class WorkoutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known_ids(self, account_id: int, peloton_ids: Iterable[str]) -> set[str]:
        """Which of ``peloton_ids`` this account already has."""
        ids = list(peloton_ids)
        if not ids:
            return set()
        stmt = select(Workout.peloton_workout_id).where(
            Workout.account_id == account_id, Workout.peloton_workout_id.in_(ids)
        )
        return set((await self.session.execute(stmt)).scalars())

    async def add_new(self, values: dict[str, Any]) -> int | None:
        """Insert a workout unless the account already has it; its id, or None if it existed."""
        stmt = (
            insert_ignoring_duplicates(self.session, Workout, ("account_id", "peloton_workout_id"))
            .values(**values)
            .returning(Workout.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get(self, workout_id: int) -> Workout | None:
        return await self.session.get(Workout, workout_id)
