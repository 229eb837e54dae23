"""The database seam (``service/dialect.py``): both paths write the same rows.

Each operation with a PostgreSQL-only path (lease claims, the recorder's one-statement write)
or a statement written per database (inserts ignoring duplicates, the Peloton error classes of
``/metrics``, the first key's turn) runs on three fresh databases: SQLite, PostgreSQL, and
PostgreSQL with the fast paths off (:func:`service.dialect.use_generic_paths`). The rows each
leaves behind must be equal, and the statements it ran show that each took the path it was
meant to (else the comparison would compare a path with itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service import dialect
from service.accounts.models import Account, SyncRun
from service.accounts.repository import AccountRepository
from service.accounts.sync import AccountPoller
from service.auth.models import ApiKey
from service.auth.service import ensure_first_key
from service.budget.models import PelotonBudget
from service.budget.repository import BudgetRepository
from service.db import Base, autocommit_session, create_engine, create_session_factory
from service.deliveries.engine import DeliveryRunner
from service.deliveries.models import Delivery, DeliveryAttempt, DeliveryState
from service.deliveries.recorder import Outcome, Recorder
from service.deliveries.repository import DeliveryRepository, attempt_values
from service.destinations.models import Destination
from service.ops.repository import MetricsRepository
from service.runtime import Runtime
from service.workouts.models import Workout
from service.workouts.repository import WorkoutRepository
from tests.conftest import fresh_database

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
ME, OTHER = "worker-me", "worker-other"

#: SQLite; PostgreSQL with its fast paths; PostgreSQL with the generic paths.
KINDS = ("sqlite", "postgres", "postgres-generic")

# Written by the clock of the database's host (defaults, onupdate), not by the operation.
WALL_CLOCK = frozenset({"created_at", "updated_at", "fetched_at"})


@dataclass
class Database:
    kind: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    statements: list[str]

    @property
    def fast(self) -> bool:
        return self.kind == "postgres"


Scenario = Callable[[Database], Awaitable[Any]]


@pytest.fixture
def everywhere(
    tmp_path: Path, sqlite_template: Path, pg_template: str | None
) -> Callable[[Scenario], Awaitable[dict[str, Any]]]:
    """Runs a scenario on each of :data:`KINDS`, each on a fresh database; what each returned."""

    async def run(scenario: Scenario) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for kind in KINDS:
            backend = kind.split("-")[0]
            async with fresh_database(
                backend, tmp_path, sqlite_template, pg_template, file_name=f"{kind}.db"
            ) as url:
                engine = create_engine(url)
                if kind.endswith("-generic"):
                    dialect.use_generic_paths(engine)
                statements: list[str] = []

                def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                    statements.append(statement)  # noqa: B023 (used before the loop moves on)

                event.listen(engine.sync_engine, "before_cursor_execute", record)
                try:
                    db = Database(kind, engine, create_session_factory(engine), statements)
                    results[kind] = await scenario(db)
                finally:
                    await engine.dispose()
        return results

    return run


def ran(db: Database, fragment: str) -> bool:
    return any(fragment in statement for statement in db.statements)


async def rows(
    db: Database, model: type[Base], *, without: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The table's rows in primary-key order, without the wall-clock columns and ``without``."""
    table = model.__table__
    skip = WALL_CLOCK | without
    async with db.sessions() as session:
        result = await session.execute(select(table).order_by(*table.primary_key.columns))
        return [
            {key: value for key, value in row._mapping.items() if key not in skip} for row in result
        ]


def _differences(got: Any, want: Any, where: str = "") -> list[str]:
    """Where ``got`` differs from ``want``, down to the rows' columns."""
    if isinstance(got, dict) and isinstance(want, dict) and got.keys() == want.keys():
        return [d for key in want for d in _differences(got[key], want[key], f"{where}.{key}")]
    if isinstance(got, list | tuple) and isinstance(want, list | tuple) and len(got) == len(want):
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in _differences(g, w, f"{where}[{i}]")
        ]
    return [] if got == want else [f"{where}: {got!r} != {want!r} (SQLite)"]


def assert_same(results: dict[str, Any]) -> None:
    for kind in ("postgres", "postgres-generic"):
        differences = _differences(results[kind], results["sqlite"])
        assert not differences, f"{kind}:\n" + "\n".join(differences)


# --- a small world of accounts, workouts, destinations and deliveries -------------------------


async def seed(db: Database) -> None:
    """Accounts in every state of a claim, two destinations (one disabled, one failing), and
    deliveries in every state of a claim, on the first."""
    async with db.sessions() as session, session.begin():

        def account(n: int, **kw: Any) -> Account:
            values: dict[str, Any] = {
                "label": f"a{n}",
                "peloton_user_id": f"u{n}",
                "auth_method": "token",
                "sync_since": NOW - timedelta(days=30),
                "next_poll_at": NOW - timedelta(minutes=n),
                **kw,
            }
            return Account(**values)

        session.add_all(
            [
                account(1),  # due
                account(2, lease_owner="old", lease_expires_at=NOW - timedelta(seconds=1)),
                account(3, lease_owner=OTHER, lease_expires_at=NOW + LEASE),  # held
                account(4, next_poll_at=NOW + timedelta(minutes=1)),  # not due
                account(5, paused=True),
                account(6, status="needs_reauth"),
                account(7),  # due, the oldest but one
            ]
        )
        session.add_all(
            [
                Destination(
                    name="live",
                    kind="directory",
                    config={},
                    formats=["tcx"],
                    failing_since=NOW - timedelta(hours=1),
                ),
                Destination(
                    name="off", kind="directory", config={}, formats=["tcx"], enabled=False
                ),
                Destination(
                    name="healthy",
                    kind="directory",
                    config={},
                    formats=["tcx"],
                    last_success_at=NOW - timedelta(seconds=10),
                ),
            ]
        )
        await session.flush()
        for n in range(1, 11):
            session.add(
                Workout(
                    account_id=1,
                    peloton_workout_id=f"w{n}",
                    discipline="cycling",
                    title=f"ride {n}",
                    started_at=NOW - timedelta(days=n),
                    peloton_status="COMPLETE",
                    raw_workout={"id": f"w{n}"},
                    raw_performance_graph={},
                )
            )
        await session.flush()

        def delivery(n: int, destination_id: int = 1, **kw: Any) -> Delivery:
            values: dict[str, Any] = {
                "workout_id": n,
                "destination_id": destination_id,
                "format": "tcx",
                "message_id": f"msg_{n}_{destination_id}",
                "next_attempt_at": NOW - timedelta(minutes=10 - n),
                **kw,
            }
            return Delivery(**values)

        session.add_all(
            [
                delivery(1),
                delivery(2, lease_owner="old", lease_expires_at=NOW - timedelta(seconds=1)),
                delivery(3, lease_owner=OTHER, lease_expires_at=NOW + LEASE),
                delivery(4),
                delivery(5, next_attempt_at=NOW + timedelta(minutes=1)),  # not due
                delivery(6, state=DeliveryState.SUCCEEDED),
                delivery(7),
                delivery(8, destination_id=2),  # its destination is disabled
                delivery(9, destination_id=3),
            ]
        )


# --- lease claims: FOR UPDATE SKIP LOCKED in one statement, or pick and conditional UPDATE ----


async def claims(db: Database) -> Any:
    await seed(db)
    claimed: dict[str, Any] = {}
    async with dialect.serialize_writes(db.engine), db.sessions() as session, session.begin():
        claimed["accounts"] = await AccountRepository(session).claim_due(
            owner=ME, now=NOW, lease=LEASE, limit=3
        )
        claimed["accounts, the rest"] = await AccountRepository(session).claim_due(
            owner=ME, now=NOW, lease=LEASE, limit=10
        )
    async with dialect.serialize_writes(db.engine), db.sessions() as session, session.begin():
        repo = DeliveryRepository(session)
        claimed["deliveries"] = await repo.claim_for_destination(
            1, owner=ME, now=NOW, lease=LEASE, limit=2
        )
        claimed["deliveries, checked"] = await repo.claim_for_destination(
            1, owner=ME, now=NOW, lease=LEASE, limit=10, check_destination=True
        )
        claimed["disabled destination"] = await repo.claim_for_destination(
            2, owner=ME, now=NOW, lease=LEASE, limit=10, check_destination=True
        )
    assert ran(db, "SKIP LOCKED") is db.fast
    lease_columns = frozenset(c.key for c in Account.__table__.columns) - {
        "id",
        "lease_owner",
        "lease_expires_at",
    }
    return {
        "claimed": claimed,
        "accounts": await rows(db, Account, without=lease_columns),
        "deliveries": await rows(db, Delivery),
    }


@pytest.mark.postgres
async def test_claims_lease_the_same_rows(everywhere: Any) -> None:
    results = await everywhere(claims)
    assert_same(results)
    claimed = results["sqlite"]["claimed"]
    # Oldest due first; the expired lease taken over (a reclaim); held, paused, parked and
    # future rows left alone.
    assert claimed["accounts"] == ([1, 2, 7], 1)
    assert claimed["accounts, the rest"] == ([], 0)
    assert claimed["deliveries"] == [1, 2]
    assert claimed["deliveries, checked"] == [4, 7]
    assert claimed["disabled destination"] == []


# --- the recorder: one statement per batch outside a transaction, or one transaction ---------


def outcome(delivery_id: int, destination_id: int, *, at: datetime, **kw: Any) -> Outcome:
    values: dict[str, Any] = {
        "owner": ME,
        "values": {"state": DeliveryState.SUCCEEDED, "attempts": 1, "delivered_at": at},
        # Every column, as the delivery engine gives them (``attempt_values``).
        "attempt": attempt_values(
            DeliveryAttempt(
                delivery_id=delivery_id,
                number=1,
                worker=ME,
                started_at=at - timedelta(seconds=1),
                duration_ms=1000,
                outcome="succeeded",
                status_code=200,
            )
        ),
        "destination_id": destination_id,
        "healthy_at": at,
    }
    values.update(kw)
    return Outcome(delivery_id=delivery_id, **values)


async def results(db: Database) -> Any:
    await seed(db)
    async with db.sessions() as session, session.begin():  # the recorder's deliveries, leased
        for delivery in (await session.execute(select(Delivery))).scalars():
            if delivery.id in (1, 2, 4, 7, 9):
                delivery.lease_owner, delivery.lease_expires_at = ME, NOW + LEASE

    async def upkeep(session: AsyncSession) -> None:
        destination = await session.get(Destination, 2)
        assert destination is not None
        destination.failing_since = NOW

    failed = outcome(
        7,
        1,
        at=NOW,
        values={
            "state": DeliveryState.PENDING,
            "attempts": 1,
            "next_attempt_at": NOW + timedelta(minutes=1),
            "last_status_code": 503,
            "last_error": "Service Unavailable",
        },
        attempt=attempt_values(
            DeliveryAttempt(
                delivery_id=7,
                number=1,
                worker=ME,
                started_at=NOW,
                duration_ms=20,
                outcome="failed",
                status_code=503,
                error_class="ServerError",
                error="Service Unavailable",
            )
        ),
        healthy_at=None,
        then=upkeep,
    )
    recorder = Recorder(db.sessions)
    written = await asyncio.gather(
        recorder.record(outcome(1, 1, at=NOW)),
        recorder.record(outcome(2, 1, at=NOW + timedelta(seconds=5))),
        recorder.record(outcome(3, 1, at=NOW)),  # OTHER holds it: nothing written
        recorder.record(outcome(4, 1, at=NOW + timedelta(seconds=2))),
        recorder.record(failed),
        recorder.record(outcome(9, 3, at=NOW)),  # healthy 10 s ago: not stamped again
    )
    await recorder.idle()
    assert ran(db, "jsonb_to_recordset") is db.fast
    attempts = await rows(db, DeliveryAttempt, without=frozenset({"id"}))
    return {
        "written": written,
        "deliveries": await rows(db, Delivery),
        "attempts": sorted(attempts, key=lambda row: (row["delivery_id"], row["number"])),
        "destinations": await rows(db, Destination),
    }


@pytest.mark.postgres
async def test_recorded_results_write_the_same_rows(everywhere: Any) -> None:
    results_by_kind = await everywhere(results)
    assert_same(results_by_kind)
    result = results_by_kind["sqlite"]
    assert result["written"] == [True, True, False, True, True, True]
    assert [row["delivery_id"] for row in result["attempts"]] == [1, 2, 4, 7, 9]
    deliveries = {row["id"]: row for row in result["deliveries"]}
    assert deliveries[3]["lease_owner"] == OTHER and deliveries[3]["state"] == "pending"
    assert deliveries[2]["state"] == "succeeded" and deliveries[2]["lease_owner"] is None
    assert deliveries[7]["last_status_code"] == 503
    assert result["attempts"][3]["error"] == "Service Unavailable"
    live, off, healthy = result["destinations"]
    assert live["failing_since"] is None
    assert live["last_success_at"] == NOW + timedelta(seconds=5)  # the latest success
    assert healthy["last_success_at"] == NOW - timedelta(seconds=10)  # left as it was
    assert off["failing_since"] == NOW  # the failure's upkeep


# --- statements written for each database --------------------------------------------------


async def inserts(db: Database) -> Any:
    await seed(db)
    async with db.sessions() as session, session.begin():
        workouts, deliveries = WorkoutRepository(session), DeliveryRepository(session)
        added = [
            await workouts.add_new(
                {
                    "account_id": 1,
                    "peloton_workout_id": peloton_id,
                    "discipline": "running",
                    "title": "run",
                    "started_at": NOW,
                    "peloton_status": "COMPLETE",
                    "raw_workout": {"id": peloton_id, "nested": {"a": [1, 2]}},
                    "raw_performance_graph": {},
                }
            )
            for peloton_id in ("new", "w1", "new")
        ]
        created = [
            await deliveries.create_pending(11, 1, ["tcx", "fit"], now=NOW),
            await deliveries.create_pending(11, 1, ["tcx", "gpx"], now=NOW),
        ]
        budget = BudgetRepository(session)
        await budget.ensure("203.0.113.7")
        await budget.ensure("203.0.113.7")
    return {
        "added": added,
        "created": created,
        "workouts": await rows(db, Workout),
        # By their natural key: a PostgreSQL sequence spends a number on an insert that meets
        # a duplicate, SQLite does not, so the ids differ.
        "deliveries": sorted(
            (
                tuple(row.values())
                for row in await rows(db, Delivery, without=frozenset({"id", "message_id"}))
            ),
            key=str,
        ),
        "budgets": await rows(db, PelotonBudget),
    }


@pytest.mark.postgres
async def test_inserts_ignoring_duplicates_write_the_same_rows(everywhere: Any) -> None:
    results = await everywhere(inserts)
    assert_same(results)
    assert results["sqlite"]["added"] == [11, None, None]
    assert results["sqlite"]["created"] == [2, 1]
    assert len(results["sqlite"]["budgets"]) == 1


async def error_classes(db: Database) -> Any:
    await seed(db)
    errors = {
        "error": ["PelotonError: boom", "PelotonError: again: twice", "no colon", None],
        "rate_limited": ["RateLimited: slow down"],
        "needs_reauth": ["NeedsReauthentication: sign in"],
        "ok": [None, "Ignored: not a failure"],
    }
    async with autocommit_session(db.sessions) as session:
        for outcome_name, messages in errors.items():
            for message in messages:
                session.add(
                    SyncRun(
                        account_id=1,
                        trigger="schedule",
                        worker=ME,
                        started_at=NOW,
                        outcome=outcome_name,
                        error=message,
                    )
                )
        await session.flush()
    async with autocommit_session(db.sessions) as session:
        return await MetricsRepository(session).peloton_errors()


@pytest.mark.postgres
async def test_peloton_error_classes_are_counted_alike(everywhere: Any) -> None:
    results = await everywhere(error_classes)
    assert_same(results)
    assert results["sqlite"] == {
        "PelotonError": 2,
        "no colon": 1,
        "unknown": 1,
        "RateLimited": 1,
        "NeedsReauthentication": 1,
    }


async def first_key(db: Database) -> Any:
    async with db.sessions() as session, session.begin():
        first = await ensure_first_key(session, NOW)
    async with db.sessions() as session, session.begin():
        again = await ensure_first_key(session, NOW)
    assert ran(db, "pg_advisory_xact_lock") is db.kind.startswith("postgres")
    keys = await rows(db, ApiKey, without=frozenset({"key_hash", "prefix"}))  # random
    return {"first": first is not None, "again": again, "keys": keys}


@pytest.mark.postgres
async def test_the_first_key_is_created_once(everywhere: Any) -> None:
    results = await everywhere(first_key)
    assert_same(results)
    assert results["sqlite"]["first"] is True and results["sqlite"]["again"] is None
    assert len(results["sqlite"]["keys"]) == 1


# --- the one SQLite writer lock ----------------------------------------------------------------


async def test_every_writer_of_an_engine_takes_the_same_turns(runtime: Runtime) -> None:
    """The claims, the recorder and the polls share one lock per engine on SQLite; on
    PostgreSQL none of them waits for another."""
    lock = dialect.serialize_writes(runtime.engine)
    recorder = DeliveryRunner(runtime).recorder
    poller = AccountPoller(runtime)
    if dialect.single_writer(runtime.engine):
        assert isinstance(lock, asyncio.Lock)
        assert recorder.writing() is lock
        assert poller._writing() is lock
        other = create_engine("sqlite+aiosqlite:///:memory:")
        try:
            assert dialect.serialize_writes(other) is not lock
        finally:
            await other.dispose()
        async with lock:  # one writer at a time: the recorder waits for the poll's turn
            waiting = asyncio.create_task(_take(recorder.writing()))
            await asyncio.sleep(0.01)
            assert not waiting.done()
        await asyncio.wait_for(waiting, 1)
    else:
        assert not isinstance(lock, asyncio.Lock)
        async with recorder.writing(), poller._writing():  # side by side: never waits
            pass


async def _take(lock: Any) -> None:
    async with lock:
        pass
