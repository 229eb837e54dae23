"""SQL for deliveries and their attempts."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    column,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import TextualSelect

from service import dialect, leases
from service.accounts.models import Account
from service.convert.pool import RawBundle
from service.db import Reader, UTCDateTime, given, utcnow
from service.deliveries.models import Delivery, DeliveryAttempt, DeliveryState, SentWorkout
from service.destinations.models import Destination
from service.workouts.models import Workout

#: A delivery with what an attempt at it needs (the workout's documents as JSON text).
Loaded = tuple[Delivery, Workout, Account, Destination, RawBundle]

_RAW = (Workout.raw_workout, Workout.raw_performance_graph, Workout.raw_ride_details)


#: A healthy destination's ``last_success_at`` is rewritten at most this often (see
#: :meth:`DeliveryRepository.mark_destination_healthy`).
SUCCESS_STAMP = timedelta(seconds=60)


def _ready(now: datetime | ColumnElement[Any]) -> ColumnElement[bool]:
    """The destination takes deliveries now: enabled, not postponed (rate limited)."""
    return and_(
        Destination.enabled.is_(True),
        or_(Destination.postponed_until.is_(None), Destination.postponed_until <= now),
    )


def attempt_values(attempt: DeliveryAttempt) -> dict[str, Any]:
    """An (unsaved) attempt's column values, for a plain INSERT."""
    return {
        column.key: getattr(attempt, column.key)
        for column in DeliveryAttempt.__table__.columns
        if column.key != "id"
    }


@dataclass(frozen=True)
class FinishedRow:
    """A finished attempt for :meth:`DeliveryRepository.finish_many`."""

    delivery_id: int
    owner: str
    destination_id: int
    values: dict[str, Any]  # the delivery's new column values
    attempt: dict[str, Any]  # the delivery_attempts row (``attempt_values``)
    healthy_at: datetime | None  # a success: the destination is healthy as of then


# Performance machinery (benchmarks/deliver.py --postgres): the PostgreSQL-only write of a batch
# of finished attempts in one statement outside a transaction, built once per shape of values.
@functools.cache
def _finish_statement(value_keys: tuple[str, ...], attempt_keys: tuple[str, ...]) -> TextualSelect:
    """The single statement of :meth:`DeliveryRepository.finish_many` for one shape of values:
    data-modifying CTEs over the rows given as one JSON parameter."""
    deliveries = cast(Table, Delivery.__table__)
    attempts = cast(Table, DeliveryAttempt.__table__)

    def typed(table: Table, keys: tuple[str, ...], prefix: str) -> list[str]:
        return [f"{prefix}{key} {dialect.postgresql_type(table.c[key].type)}" for key in keys]

    record = ", ".join(
        [
            "delivery_id INTEGER",
            "owner TEXT",
            "destination_id INTEGER",
            "healthy_at TIMESTAMP WITH TIME ZONE",
            *typed(deliveries, value_keys, "d_"),
            *typed(attempts, attempt_keys, "a_"),
        ]
    )
    sets = "".join(f", {key} = v.d_{key}" for key in value_keys)
    return text(
        f"""
        WITH v AS (
            SELECT * FROM jsonb_to_recordset(CAST(:rows AS JSONB)) AS v({record})
        ),
        released AS (
            UPDATE deliveries AS d
            SET lease_owner = NULL, lease_expires_at = NULL, updated_at = :now{sets}
            FROM v
            WHERE d.id = v.delivery_id AND d.lease_owner = v.owner
            RETURNING d.id
        ),
        logged AS (
            INSERT INTO delivery_attempts ({", ".join(attempt_keys)})
            SELECT {", ".join(f"v.a_{key}" for key in attempt_keys)}
            FROM v JOIN released ON released.id = v.delivery_id
        ),
        healthy AS (
            UPDATE destinations AS t
            SET last_success_at = h.at, failing_since = NULL
            FROM (
                SELECT v.destination_id, max(v.healthy_at) AS at
                FROM v JOIN released ON released.id = v.delivery_id
                WHERE v.healthy_at IS NOT NULL
                GROUP BY v.destination_id
            ) AS h
            WHERE t.id = h.destination_id AND (
                t.failing_since IS NOT NULL
                OR t.last_success_at IS NULL
                OR t.last_success_at <= h.at - make_interval(secs => CAST(:stamp AS FLOAT))
            )
        )
        SELECT id FROM released
        """
    ).columns(column("id", Integer))


# Performance machinery (benchmarks/deliver.py): a statement cache; the claim is built once.
@functools.cache
def _claim_statements(skip_locked: bool, check_destination: bool) -> leases.ClaimStatements:
    """The claim of :meth:`DeliveryRepository.claim_for_destination`, built once (it runs on
    every refill of a busy destination)."""
    # Not named after a column: an UPDATE reserves those names for its SET clause.
    destination_id: BindParameter[int] = bindparam("for_destination")
    now: BindParameter[datetime] = bindparam("now")
    due = and_(
        Delivery.destination_id == destination_id,
        Delivery.state == DeliveryState.PENDING,
        Delivery.next_attempt_at <= now,
    )
    if check_destination:
        due = and_(due, exists().where(_ready(now), Destination.id == destination_id))
    return leases.claim_statements(
        Delivery, due=due, order_by=Delivery.next_attempt_at, skip_locked=skip_locked
    )


def new_message_id() -> str:
    """A Standard Webhooks message id: stable for the delivery's whole life."""
    return "msg_" + secrets.token_hex(12)


# The statements the delivery engine runs for every few attempts, built once: building one and
# fingerprinting it for SQLAlchemy's compiled cache costs more CPU than running it.

# The documents come as text for the converter process to decode (see RawBundle); the Workout
# entity is loaded without them (and refuses to load them lazily).
_LOAD_MANY = (
    select(Delivery, Workout, Account, Destination, *(sql_cast(c, Text) for c in _RAW))
    .join(Workout, Workout.id == Delivery.workout_id)
    .join(Account, Account.id == Workout.account_id)
    .join(Destination, Destination.id == Delivery.destination_id)
    .where(Delivery.id.in_(bindparam("ids", expanding=True)))
    .options(*(defer(c, raiseload=True) for c in _RAW))
)
_HELD_LOCKED = (
    select(Delivery.id)
    .where(
        Delivery.id.in_(bindparam("ids", expanding=True)),
        Delivery.lease_owner == bindparam("owner"),
    )
    .with_for_update()
)
_HEALTHY = (
    update(Destination)
    .where(
        Destination.id == bindparam("healthy_id"),
        or_(
            Destination.failing_since.is_not(None),
            Destination.last_success_at.is_(None),
            Destination.last_success_at <= bindparam("stale", type_=UTCDateTime()),
        ),
    )
    .values(last_success_at=bindparam("now", type_=UTCDateTime()), failing_since=None)
    .execution_options(synchronize_session=False)
)
_ADD_ATTEMPTS = insert(cast(Table, DeliveryAttempt.__table__))


# Performance machinery (benchmarks/deliver.py): a statement cache, one per shape of values.
@functools.cache
def _release(keys: tuple[str, ...]) -> Any:
    """:meth:`DeliveryRepository.release_many`'s statement for one shape of values."""
    table = cast(Table, Delivery.__table__)
    return (
        update(table)
        .where(table.c.id == bindparam("v_id"))
        .values(
            lease_owner=None,
            lease_expires_at=None,
            **{key: bindparam(f"v_{key}") for key in keys},
        )
    )


# What lists show: every column but the lease's and the retry budget's (engine bookkeeping).
_LISTED = tuple(
    c
    for c in Delivery.__table__.columns
    if not c.key.startswith("lease_") and c.key != "budget_start"
)


# Performance machinery (benchmarks/api.py, the deliveries list): a statement cache.
@functools.cache
def page_statement(
    below_cursor: bool, state: bool, destination: bool, workout: bool
) -> Select[Any]:
    """The list's statement for one combination of filters, with bind parameters (built and
    fingerprinted once, as the workouts' list)."""
    table = Delivery.__table__.c
    stmt = select(*_LISTED).order_by(table.id.desc())
    if below_cursor:
        stmt = stmt.where(table.id < bindparam("cursor_id"))
    if state:
        stmt = stmt.where(table.state == bindparam("state"))
    if destination:
        stmt = stmt.where(table.destination_id == bindparam("destination_id"))
    if workout:
        stmt = stmt.where(table.workout_id == bindparam("workout_id"))
    return stmt.limit(bindparam("limit", type_=Integer))


async def page(
    reader: Reader,
    *,
    limit: int,
    before_id: int | None = None,
    state: str | None = None,
    destination_id: int | None = None,
    workout_id: int | None = None,
) -> list[Row[Any]]:
    """Deliveries (columns, not lease fields), newest first (by id), below ``before_id``."""
    stmt = page_statement(
        before_id is not None, state is not None, destination_id is not None, workout_id is not None
    )
    params = given(
        limit=limit,
        cursor_id=before_id,
        state=state,
        destination_id=destination_id,
        workout_id=workout_id,
    )
    return list(await reader.execute(stmt, params))


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_pending(
        self, workout_id: int, destination_id: int, formats: list[str], *, now: datetime
    ) -> int:
        """One pending delivery per format, due at ``now`` (the caller's clock, so an injected
        clock governs the whole schedule); existing ones are left alone. Returns how many."""
        created = 0
        for fmt in formats:
            stmt = (
                dialect.insert_ignoring_duplicates(
                    self.session, Delivery, ("workout_id", "destination_id", "format")
                )
                .values(
                    workout_id=workout_id,
                    destination_id=destination_id,
                    format=fmt,
                    message_id=new_message_id(),
                    state=DeliveryState.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
                .returning(Delivery.id)
            )
            if (await self.session.execute(stmt)).scalar_one_or_none() is not None:
                created += 1
        return created

    async def claim_for_destination(
        self,
        destination_id: int,
        *,
        owner: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        check_destination: bool = False,
    ) -> list[int]:
        """Lease up to ``limit`` due deliveries of one destination (oldest due first);
        ``check_destination``: only if it is enabled and not postponed (else the caller found
        it with :meth:`due_destinations`)."""
        ids, _ = await leases.run_claim(
            self.session,
            _claim_statements(dialect.skip_locked_claims(self.session), check_destination),
            owner=owner,
            now=now,
            lease=lease,
            limit=limit,
            for_destination=destination_id,
        )
        return ids

    async def due_destinations(self, now: datetime) -> list[Destination]:
        """Enabled, not postponed destinations with deliveries due now, by id.

        One query over the destinations, each checked with EXISTS (which stops at its first
        due delivery), rather than collecting every due delivery's destination: with a backlog
        this runs on every refill, and thousands of due rows would be read each time.
        """
        due = select(Delivery.id).where(
            Delivery.destination_id == Destination.id,
            Delivery.state == DeliveryState.PENDING,
            Delivery.next_attempt_at <= now,
            leases.lease_free(Delivery, now),
        )
        stmt = select(Destination).where(_ready(now), due.exists()).order_by(Destination.id)
        return list((await self.session.execute(stmt)).scalars())

    async def load(self, delivery_id: int) -> Loaded | None:
        return (await self.load_many([delivery_id])).get(delivery_id)

    async def load_many(self, delivery_ids: Sequence[int]) -> dict[int, Loaded]:
        """Deliveries with what an attempt needs (workout, account, destination), by id."""
        if not delivery_ids:
            return {}
        rows = await self.session.execute(_LOAD_MANY, {"ids": list(delivery_ids)})
        return {
            row[0].id: (row[0], row[1], row[2], row[3], RawBundle(row[4], row[5], row[6]))
            for row in rows
        }

    async def extend_leases(
        self, delivery_ids: Sequence[int], owner: str, until: datetime
    ) -> set[int]:
        """Push the expiry of the leases ``owner`` still holds among these; their ids."""
        if not delivery_ids:
            return set()
        stmt = (
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), leases.owner_guard(Delivery, owner))
            .values(lease_expires_at=until)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
        return set((await self.session.execute(stmt)).scalars())

    async def release_leases(self, delivery_ids: Sequence[int], owner: str) -> None:
        """Give back leases ``owner`` holds without having started the attempts."""
        stmt = (
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), leases.owner_guard(Delivery, owner))
            .values(lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(stmt)

    async def attempts_stored(self, attempts: Sequence[dict[str, Any]]) -> set[int]:
        """The deliveries of these attempt rows (``attempt_values``) whose row is stored
        already: a write whose commit landed although its answer was lost."""
        if not attempts:
            return set()
        stmt = select(DeliveryAttempt.delivery_id).where(
            or_(
                *(
                    and_(
                        DeliveryAttempt.delivery_id == row["delivery_id"],
                        DeliveryAttempt.number == row["number"],
                        DeliveryAttempt.worker == row["worker"],
                        DeliveryAttempt.started_at == row["started_at"],
                    )
                    for row in attempts
                )
            )
        )
        return set((await self.session.execute(stmt)).scalars())

    async def finish(self, delivery_id: int, owner: str, **values: Any) -> bool:
        return await leases.release(self.session, Delivery, delivery_id, owner, **values)

    async def held_leases(self, delivery_ids: Sequence[int], owner: str) -> set[int]:
        """Which of these deliveries ``owner`` still holds (locked until the transaction ends)."""
        # FOR UPDATE: a claim or lease renewal on PostgreSQL waits for this transaction. SQLite
        # has no row locks (SQLAlchemy leaves the clause out): its one writer is the lock.
        params = {"ids": list(delivery_ids), "owner": owner}
        return set((await self.session.execute(_HELD_LOCKED, params)).scalars())

    async def release_many(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Write each delivery's new values and drop its lease: one statement per shape of
        values, run with many parameter sets. Check the leases with :meth:`held_leases` first."""
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for delivery_id, values in rows:
            params = {f"v_{key}": value for key, value in values.items()}
            shapes.setdefault(tuple(sorted(values)), []).append({"v_id": delivery_id, **params})
        for keys, params_list in shapes.items():
            await self.session.execute(_release(keys), params_list)

    # Performance machinery (benchmarks/deliver.py --postgres): the PostgreSQL-only write path
    # of the recorder; it spares each batch's BEGIN, COMMIT and separate statements, whose round
    # trips cost about as much CPU as the deliveries' own HTTP requests.
    async def finish_many(
        self, rows: Sequence[FinishedRow], *, stamp: timedelta = SUCCESS_STAMP
    ) -> set[int]:
        """PostgreSQL: write finished attempts whose leases ``owner`` still holds, each row's
        delivery values, attempt row and destination health (as :meth:`release_many`,
        :meth:`add_attempts` and :meth:`mark_destination_healthy` do) in one statement per
        shape of values, without a transaction around it: each statement is atomic on its own,
        and the lease check is part of its UPDATE. Returns the ids of the deliveries written.
        """
        shapes: dict[tuple[tuple[str, ...], tuple[str, ...]], list[FinishedRow]] = {}
        for row in rows:
            shapes.setdefault((tuple(sorted(row.values)), tuple(sorted(row.attempt))), []).append(
                row
            )
        written: set[int] = set()
        for (value_keys, attempt_keys), group in shapes.items():
            payload = orjson.dumps(
                [
                    {
                        "delivery_id": row.delivery_id,
                        "owner": row.owner,
                        "destination_id": row.destination_id,
                        "healthy_at": row.healthy_at,
                        **{f"d_{key}": value for key, value in row.values.items()},
                        **{f"a_{key}": value for key, value in row.attempt.items()},
                    }
                    for row in group
                ]
            ).decode()
            stmt = _finish_statement(value_keys, attempt_keys)
            params = {"rows": payload, "now": utcnow(), "stamp": stamp.total_seconds()}
            written |= set((await self.session.execute(stmt, params)).scalars())
        return written

    async def add_attempt(self, attempt: DeliveryAttempt) -> None:
        """Insert the attempt's row: a plain INSERT, without the unit of work's flush."""
        await self.add_attempts([attempt_values(attempt)])

    async def add_attempts(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(_ADD_ATTEMPTS, list(rows))

    async def mark_destination_healthy(
        self, destination_id: int, now: datetime, *, every: timedelta = SUCCESS_STAMP
    ) -> None:
        """After a success: clear ``failing_since`` and stamp ``last_success_at``.

        The row is written only when that changes something: it was failing, or its last
        success is older than ``every``. Every success rewriting it would make concurrent
        deliveries to one destination queue on its row lock; the condition is evaluated by the
        database, so a failure recorded meanwhile by another attempt is still cleared.
        """
        params = {"healthy_id": destination_id, "now": now, "stale": now - every}
        await self.session.execute(_HEALTHY, params)

    async def pending_count(self) -> int:
        stmt = (
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.state == DeliveryState.PENDING)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    # --- the admin API's lists ----------------------------------------------------------------

    async def get(self, delivery_id: int) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id)

    async def for_workout(self, workout_id: int) -> list[Delivery]:
        stmt = select(Delivery).where(Delivery.workout_id == workout_id).order_by(Delivery.id)
        return list((await self.session.execute(stmt)).scalars())

    async def attempts(self, delivery_id: int) -> list[DeliveryAttempt]:
        stmt = (
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(DeliveryAttempt.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def remember_sent(self, account_id: int) -> int:
        """Keep, as :class:`SentWorkout` rows, what the account's workouts were delivered to,
        before the account (and with it its workouts and deliveries) is deleted. Returns how
        many were written (ones kept already are left alone)."""
        stmt = (
            select(
                Workout.peloton_workout_id,
                Delivery.destination_id,
                Delivery.format,
                Delivery.delivered_at,
                Delivery.external_id,
            )
            .join(Workout, Workout.id == Delivery.workout_id)
            .where(Workout.account_id == account_id, Delivery.delivered_at.is_not(None))
        )
        rows = [
            {
                "peloton_workout_id": r.peloton_workout_id,
                "destination_id": r.destination_id,
                "format": r.format,
                "delivered_at": r.delivered_at,
                "external_id": r.external_id,
            }
            for r in await self.session.execute(stmt)
        ]
        if rows:
            key = ("peloton_workout_id", "destination_id", "format")
            await self.session.execute(
                dialect.insert_ignoring_duplicates(self.session, SentWorkout, key), rows
            )
        return len(rows)

    async def sent_before(self, peloton_workout_ids: Sequence[str]) -> set[tuple[str, int, str]]:
        """(Peloton workout id, destination id, format) of those delivered before their account
        was deleted (:meth:`remember_sent`)."""
        if not peloton_workout_ids:
            return set()
        stmt = select(
            SentWorkout.peloton_workout_id, SentWorkout.destination_id, SentWorkout.format
        ).where(SentWorkout.peloton_workout_id.in_(list(peloton_workout_ids)))
        return {(r[0], r[1], r[2]) for r in await self.session.execute(stmt)}
