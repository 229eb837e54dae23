"""The database seam: everything that differs between SQLite and PostgreSQL, asked for by intent.

No module outside this one reads ``dialect.name`` or imports ``sqlalchemy.dialects``
(``tests/test_architecture.py`` checks it; the migrations are the only other exception). Callers
ask what they need: "may a claim lock and skip rows?", "the one writer lock of this engine",
"insert, ignoring duplicates", rather than "is this PostgreSQL?".

Three kinds of difference live here:

- **Mechanics** both databases need, written differently: JSON columns, timezone-aware
  datetimes, ``INSERT … ON CONFLICT DO NOTHING``, the text before a separator, SQLite's
  per-connection pragmas.
- **Coordination**: SQLite runs one writer at a time, and a waiting connection sleeps in its
  busy handler (1, 2, 5, 10… ms) and gives up after ``busy_timeout``; the engine's background
  writers (claims, finished attempts, polls) take turns on :func:`serialize_writes` instead,
  in order and without a time limit. PostgreSQL writes side by side, and replicas doing the
  same one-off work (migrations, the first key) take turns with :func:`take_turns`.
- **PostgreSQL fast paths**, for throughput only: a generic path writes the same rows on both
  databases (``tests/test_dialect_paths.py`` checks it, on PostgreSQL also with the fast paths
  off: :func:`use_generic_paths`).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, String, make_url, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import dialect as postgresql_dialect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine

#: Whatever a caller holds: an engine, a session or a connection (async or not).
Bind = AsyncEngine | AsyncSession | AsyncConnection | Engine | Connection


def _engine(bind: Bind) -> Engine:
    if isinstance(bind, AsyncEngine | AsyncConnection):
        return bind.sync_engine
    if isinstance(bind, AsyncSession):
        sync = bind.get_bind()
        return sync.engine if isinstance(sync, Connection) else sync
    return bind.engine if isinstance(bind, Connection) else bind


def _postgresql(dialect: Dialect) -> bool:
    return dialect.name == "postgresql"


def _sqlite(dialect: Dialect) -> bool:
    return dialect.name == "sqlite"


# --- mechanics: the same thing, written for each database ----------------------------------

#: JSON documents (raw Peloton responses, destination config): JSONB on PostgreSQL.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


def stores_naive_datetimes(dialect: Dialect) -> bool:
    """SQLite has no timezone: UTC datetimes are stored without one."""
    return _sqlite(dialect)


def reads_utc_datetimes(dialect: Dialect) -> bool:
    """The driver reads ``timestamptz`` as aware datetimes in UTC already (asyncpg)."""
    return dialect.driver == "asyncpg"


def insert_ignoring_duplicates(session: AsyncSession, table: Any, key: Sequence[str]) -> Any:
    """``INSERT … ON CONFLICT (key) DO NOTHING`` for the session's database (both have it)."""
    if _postgresql(_engine(session).dialect):
        return pg_insert(table).on_conflict_do_nothing(index_elements=list(key))
    return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(key))


class text_before(FunctionElement[str]):
    """SQL: the text of ``expression`` before the first ``separator``, all of it without one
    (``split_part`` on PostgreSQL, ``instr`` and ``substr`` on SQLite)."""

    type = String()
    name = "text_before"
    inherit_cache = True


@compiles(text_before, "postgresql")
def _text_before_postgresql(element: text_before, compiler: SQLCompiler, **kw: Any) -> str:
    expression, separator = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"split_part({expression}, {separator}, 1)"


@compiles(text_before)
def _text_before(element: text_before, compiler: SQLCompiler, **kw: Any) -> str:
    expression, separator = (compiler.process(clause, **kw) for clause in element.clauses)
    cut = f"instr({expression}, {separator})"
    return f"CASE WHEN {cut} > 0 THEN substr({expression}, 1, {cut} - 1) ELSE {expression} END"


def postgresql_type(type_: TypeEngine[Any]) -> str:
    """A column type as PostgreSQL spells it (for a PostgreSQL-only textual statement)."""
    return type_.compile(dialect=postgresql_dialect())  # type: ignore[no-untyped-call]


# --- engines and connections -----------------------------------------------------------------


def single_writer(bind: Bind | str) -> bool:
    """The database runs one writer at a time, in a file of its own (SQLite); ``bind`` may also
    be a database URL."""
    if isinstance(bind, str):
        return make_url(bind).get_backend_name() == "sqlite"
    return _sqlite(_engine(bind).dialect)


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """SQLite's settings, on every new connection (the engine's ``connect`` event): WAL, so the
    API reads while the scheduler writes; foreign keys on; a busy timeout."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# --- coordination ------------------------------------------------------------------------------

# One writer lock per engine and event loop (a lock belongs to the loop it first waits on; a
# test's engine may outlive its loop).
_WRITE_LOCKS: weakref.WeakKeyDictionary[
    Engine, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
] = weakref.WeakKeyDictionary()


def serialize_writes(bind: Bind) -> contextlib.AbstractAsyncContextManager[object]:
    """Hold around a write transaction of the engine's background writers (claims, finished
    attempts, polls), opened inside it.

    SQLite: the engine's one writer lock. A connection waiting for SQLite's write lock sleeps
    in its busy handler (1, 2, 5, 10… ms) and gives up after ``busy_timeout``; taking turns here
    instead costs no sleep and has no time limit. PostgreSQL: nothing, writes run side by side.
    Not re-entrant: never take it twice in one task.
    """
    engine = _engine(bind)
    if not _sqlite(engine.dialect):
        return contextlib.nullcontext()
    per_loop = _WRITE_LOCKS.get(engine)
    if per_loop is None:
        per_loop = _WRITE_LOCKS[engine] = weakref.WeakKeyDictionary()
    loop = asyncio.get_running_loop()
    lock = per_loop.get(loop)
    if lock is None:
        lock = per_loop[loop] = asyncio.Lock()
    return lock


#: Keys of :func:`take_turns`, one per kind of one-off work (PostgreSQL advisory locks).
MIGRATIONS_TURN = 74230617
FIRST_KEY_TURN = 74230618


async def take_turns(bind: AsyncSession | AsyncConnection, key: int) -> None:
    """Replicas doing the same one-off work (``key``) take turns until this transaction ends:
    the later ones then find it done. PostgreSQL: a transaction-level advisory lock; SQLite
    serves one process, and its single writer serializes the work anyway."""
    if _postgresql(_engine(bind).dialect):
        await bind.execute(text(f"SELECT pg_advisory_xact_lock({int(key)})"))


# --- Performance machinery: the PostgreSQL fast paths (throughput only; the generic paths write
# the same rows) ---------------------------------------------------------------------------
# Together, in ``python -m benchmarks.deliver --databases postgres postgres-generic`` (json,
# c=16, 1,500 deliveries, once on a loaded 2-core machine): 1.72 ms of event-loop CPU per
# delivery instead of 2.23, and 126 deliveries/s instead of 70.

_GENERIC_ONLY: weakref.WeakSet[Engine] = weakref.WeakSet()


def use_generic_paths(bind: Bind) -> None:
    """Turn the fast paths below off for this engine, so tests (and benchmarks) compare them
    with the generic paths on PostgreSQL itself."""
    _GENERIC_ONLY.add(_engine(bind))


def _fast(bind: Bind) -> bool:
    engine = _engine(bind)
    return _postgresql(engine.dialect) and engine not in _GENERIC_ONLY


def skip_locked_claims(bind: Bind) -> bool:
    """Claims pick and lease their rows in one statement (``FOR UPDATE SKIP LOCKED`` in a CTE
    under the UPDATE), so concurrent replicas skip each other's rows instead of waiting on
    them (``service/leases.py``). Performance machinery: commit afb7b86, the replicas' claims
    in ``python -m benchmarks.deliver --postgres``. Generic: pick, then a conditional UPDATE."""
    return _fast(bind)


def one_statement_results(bind: Bind) -> bool:
    """Finished attempts are written by one statement per shape of values, outside a transaction
    (data-modifying CTEs over the rows as one JSONB parameter:
    ``DeliveryRepository.finish_many``). Performance machinery, bought in
    ``python -m benchmarks.deliver --postgres`` (commit c6706c5): a transaction's BEGIN, COMMIT
    and separate statements cost a round trip each, about as much CPU as the delivery's HTTP
    request. Generic: one transaction of several statements."""
    return _fast(bind)


async def autocommit(bind: AsyncSession | AsyncConnection) -> None:
    """Let each statement commit on its own, sparing a transaction's BEGIN and COMMIT round
    trips: reads, and single-statement writes. Performance machinery, bought in
    ``python -m benchmarks.api`` (commits cc6fead, f508607: one database round trip per list
    request, towards its p99 < 50 ms).
    SQLite only begins a transaction before a write, so it is left as it is."""
    if not _fast(bind):
        return
    if isinstance(bind, AsyncSession):
        await bind.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    else:
        await bind.execution_options(isolation_level="AUTOCOMMIT")
