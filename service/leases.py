"""Leases: how replicas share work through the database, and nothing else.

A row (an account to poll, a delivery to send) is *due* when its time has come and nobody holds
a live lease on it. Claiming sets ``lease_owner`` and ``lease_expires_at`` conditionally:

- PostgreSQL (:func:`service.dialect.skip_locked_claims`): ``WITH picked AS (SELECT id …
  FOR UPDATE SKIP LOCKED LIMIT n) UPDATE … FROM picked RETURNING id``, so concurrent replicas
  skip each other's rows instead of waiting on them;
- otherwise (SQLite, or PostgreSQL with the fast paths off): a pick, then a conditional
  ``UPDATE … RETURNING`` of the candidates; SQLite runs one writer at a time, so the
  statement is atomic on its own, and on PostgreSQL the UPDATE re-checks the condition on
  rows another transaction changed meanwhile.

A crashed worker's lease simply expires and the row becomes due again (a *reclaim*). Every
finishing write is guarded by the owner (:func:`owner_guard`), so a worker whose lease lapsed
and was taken over cannot overwrite the new owner's result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from service import dialect


def lease_free(model: Any, now: datetime | ColumnElement[Any]) -> ColumnElement[bool]:
    """Nobody holds a live lease on the row."""
    return or_(model.lease_expires_at.is_(None), model.lease_expires_at < now)


def owner_guard(model: Any, owner: str) -> ColumnElement[bool]:
    return model.lease_owner == owner  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ClaimStatements:
    """A claim's statement(s), built once with bind parameters (see :func:`claim_statements`)."""

    pick: Any  # skip_locked: the whole claim; else the pick of candidates
    take: Any | None = None  # not skip_locked: the conditional UPDATE of the candidates


def claim_statements(
    model: Any,
    *,
    due: ColumnElement[bool],
    order_by: InstrumentedAttribute[Any],
    skip_locked: bool,
) -> ClaimStatements:
    """The statements of a claim on ``model``, with bind parameters ``now``, ``until`` (the
    new lease's expiry), ``owner`` and ``limit``, plus any in ``due``. A caller claiming often
    builds them once and runs them with :func:`run_claim`: building and fingerprinting the
    statement for the compiled cache cost more CPU than running it."""
    now = bindparam("now", type_=model.lease_expires_at.type)
    condition = and_(due, lease_free(model, now))
    pick = (
        select(model.id, model.lease_owner)
        .where(condition)
        .order_by(order_by, model.id)
        .limit(bindparam("limit", type_=Integer))
    )
    leased: dict[str, Any] = {
        "lease_owner": bindparam("owner"),
        "lease_expires_at": bindparam("until"),
    }
    if skip_locked:
        # One statement: the rows picked are locked by it, so nobody can take them between
        # the pick and the update; the old owner comes back from the pick (a reclaim).
        picked = pick.with_for_update(skip_locked=True).cte("picked")
        return ClaimStatements(
            update(model)
            .where(model.id == picked.c.id)
            .values(**leased)
            .returning(model.id, picked.c.lease_owner)
            .execution_options(synchronize_session=False)
        )
    # The conditional UPDATE is the arbiter: a row another worker leased in between no longer
    # matches ``condition`` and is not returned.
    take = (
        update(model)
        .where(model.id.in_(bindparam("candidates", expanding=True)), condition)
        .values(**leased)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    return ClaimStatements(pick, take)


async def run_claim(
    session: AsyncSession,
    statements: ClaimStatements,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    **params: Any,
) -> tuple[list[int], int]:
    """Lease up to ``limit`` due rows to ``owner``; returns their ids and how many were reclaims.

    The caller commits right away so other replicas see the leases.
    """
    if limit <= 0:
        return [], 0
    params.update(owner=owner, now=now, until=now + lease, limit=limit)
    if statements.take is None:
        rows = (await session.execute(statements.pick, params)).all()
        return sorted(row[0] for row in rows), sum(1 for row in rows if row[1] is not None)
    candidates = {row.id: row.lease_owner for row in await session.execute(statements.pick, params)}
    if not candidates:
        return [], 0
    taken = await session.execute(statements.take, {**params, "candidates": list(candidates)})
    ids = sorted(taken.scalars())
    reclaimed = sum(1 for i in ids if candidates[i] is not None)
    return ids, reclaimed


async def claim(
    session: AsyncSession,
    model: Any,
    *,
    due: ColumnElement[bool],
    order_by: InstrumentedAttribute[Any],
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> tuple[list[int], int]:
    """:func:`run_claim` with statements built for this one claim."""
    statements = claim_statements(
        model,
        due=due,
        order_by=order_by,
        skip_locked=dialect.skip_locked_claims(session),
    )
    return await run_claim(session, statements, owner=owner, now=now, lease=lease, limit=limit)


async def release(
    session: AsyncSession, model: Any, row_id: int, owner: str, **values: Any
) -> bool:
    """Write ``values`` and drop the lease, only if ``owner`` still holds it."""
    stmt = (
        update(model)
        .where(model.id == row_id, owner_guard(model, owner))
        .values(lease_owner=None, lease_expires_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def extend(
    session: AsyncSession, model: Any, row_id: int, owner: str, until: datetime
) -> bool:
    """Push a held lease's expiry (long work renews its lease); False if it was lost."""
    stmt = (
        update(model)
        .where(model.id == row_id, owner_guard(model, owner))
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]
