"""Several replicas on one database: every workout stored once, every delivery made once.

In-process replicas (several runtimes and poll jobs in one event loop) run on PostgreSQL and
SQLite, including a worker whose lease lapsed and was taken over while it polled; real
``pelosync serve`` processes run on PostgreSQL: two, then three more after a restart, and two
of which one is SIGKILLed mid-sync and the survivor reclaims its leases. Also here: one
process's ``sync --once`` pass polls every due account, not just one batch of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from service.accounts import linking as accounts
from service.accounts.jobs import PollJob
from service.accounts.models import Account, SyncRun
from service.accounts.repository import AccountRepository
from service.accounts.sync import AccountPoller
from service.db import utcnow
from service.deliveries.models import Delivery, DeliveryAttempt
from service.destinations.models import Destination
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.runtime import Runtime, open_runtime
from service.workouts.models import Workout
from tests.accounts.conftest import LONG_AGO
from tests.conftest import PG_ENV, TEST_SECRET_KEY, make_settings
from tests.support.clock import no_wait
from tests.support.waiting import wait_until as eventually

FORMATS = ["fit", "tcx"]
TEMPLATE = "{account_id}/{workout_id}.{ext}"  # one file per workout and format, never shared
EVERY_N = 5  # graph samples every 5 s: the same engine work, a fifth of the bytes
USERS = 50


# --- what the database holds ---------------------------------------------------------------


@dataclass
class Ledger:
    """The rows that say what was synced and delivered, and by whom."""

    workouts: dict[int, tuple[str, str]]  # row id -> (Peloton user id, Peloton workout id)
    deliveries: list[Any]
    attempts: list[Any]
    runs: list[Any]


async def read_ledger(rt: Runtime) -> Ledger:
    async with rt.sessions() as session:
        workouts = await session.execute(
            select(Workout.id, Account.peloton_user_id, Workout.peloton_workout_id).join(
                Account, Account.id == Workout.account_id
            )
        )
        deliveries = await session.execute(
            select(
                Delivery.id,
                Delivery.workout_id,
                Delivery.destination_id,
                Delivery.format,
                Delivery.message_id,
                Delivery.state,
                Delivery.external_id,
            )
        )
        attempts = await session.execute(
            select(DeliveryAttempt.delivery_id, DeliveryAttempt.outcome, DeliveryAttempt.worker)
        )
        runs = await session.execute(
            select(
                SyncRun.account_id,
                SyncRun.worker,
                SyncRun.started_at,
                SyncRun.finished_at,
                SyncRun.outcome,
                SyncRun.new,
            )
        )
        return Ledger(
            workouts={row[0]: (row[1], row[2]) for row in workouts},
            deliveries=list(deliveries),
            attempts=list(attempts),
            runs=list(runs),
        )


def expected_workouts(state: SandboxState) -> dict[str, set[str]]:
    """Peloton user id -> ids of the user's complete workouts in the sandbox."""
    return {
        user_id: {w.workout_id for w in state.workouts(account) if not w.in_progress}
        for user_id, account in state.accounts.items()
    }


def assert_workouts_once(ledger: Ledger, expected: dict[str, set[str]]) -> None:
    pairs = list(ledger.workouts.values())
    assert len(pairs) == len(set(pairs)), "a workout was stored twice"
    stored: dict[str, set[str]] = {user: set() for user in expected}
    for user, workout in pairs:
        stored[user].add(workout)
    assert stored == expected
    # Each stored workout was counted new by exactly one finished poll.
    assert sum(run.new for run in ledger.runs) == len(pairs)


def assert_deliveries_once(ledger: Ledger, *, delivered: bool) -> None:
    keys = [(d.workout_id, d.destination_id, d.format) for d in ledger.deliveries]
    assert len(keys) == len(set(keys))
    assert len({d.message_id for d in ledger.deliveries}) == len(ledger.deliveries)
    formats: dict[int, list[str]] = defaultdict(list)
    for d in ledger.deliveries:
        formats[d.workout_id].append(d.format)
    assert set(formats) == set(ledger.workouts)
    assert all(sorted(f) == FORMATS for f in formats.values())
    if not delivered:
        return
    assert {d.state for d in ledger.deliveries} == {"succeeded"}
    attempts: dict[int, list[str]] = defaultdict(list)
    for attempt in ledger.attempts:
        attempts[attempt.delivery_id].append(attempt.outcome)
    # One attempt each, and it succeeded: no file was ever written twice.
    assert attempts == {d.id: ["succeeded"] for d in ledger.deliveries}


def assert_runs_never_overlap(ledger: Ledger) -> None:
    by_account: dict[int, list[Any]] = defaultdict(list)
    for run in ledger.runs:
        by_account[run.account_id].append(run)
    for runs in by_account.values():
        runs.sort(key=lambda r: r.started_at)
        for before, after in zip(runs, runs[1:], strict=False):
            assert before.finished_at <= after.started_at, (before, after)


def assert_files_match(root: Path, ledger: Ledger) -> None:
    """The folder holds exactly the delivered files, none empty, no temporary leftovers."""
    files = {str(p) for p in root.rglob("*") if p.is_file()}
    assert files == {d.external_id for d in ledger.deliveries}
    assert all(Path(f).stat().st_size > 0 for f in files)


# --- set-up helpers -------------------------------------------------------------------------


async def link_all(rt: Runtime, state: SandboxState, limit: int | None = None) -> None:
    for account in list(state.accounts.values())[:limit]:
        refresh = state.describe_user(account)["refresh_tokens"][0]["token"]
        request = accounts.LinkRequest(refresh_token=refresh, sync_since=LONG_AGO)
        async with rt.sessions() as session, session.begin():
            await accounts.link(rt, session, request)


async def add_folder(rt: Runtime, root: Path, **values: Any) -> int:
    async with rt.sessions() as session, session.begin():
        destination = Destination(
            name="folder",
            kind="directory",
            config={"root": str(root), "template": TEMPLATE},
            formats=FORMATS,
            enabled=True,
            concurrency=8,
            **values,
        )
        session.add(destination)
        await session.flush()
        return destination.id


async def set_accounts(rt: Runtime, **values: Any) -> None:
    async with rt.sessions() as session, session.begin():
        await session.execute(update(Account).values(**values))


async def counts(rt: Runtime) -> tuple[int, int]:
    """(stored workouts, succeeded deliveries)."""
    async with rt.sessions() as session:
        workouts = (await session.execute(select(func.count()).select_from(Workout))).scalar_one()
        done = (
            await session.execute(
                select(func.count()).select_from(Delivery).where(Delivery.state == "succeeded")
            )
        ).scalar_one()
    return int(workouts), int(done)


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    state = SandboxState(SandboxConfig(seed=21, users=USERS, workouts=2, anchor=int(time.time())))
    async with run_sandbox(state) as url:
        yield state, url


@contextlib.asynccontextmanager
async def replica_runtime(
    tmp_path: Path, database_url: str, url: str, name: str, **overrides: Any
) -> AsyncIterator[Runtime]:
    settings = make_settings(
        tmp_path,
        database_url,
        peloton_api_url=url,
        peloton_auth_url=url,
        peloton_every_n=EVERY_N,
        worker_name=name,
        **overrides,
    )
    async with open_runtime(settings) as rt:
        rt.sleep = no_wait
        yield rt


# --- in-process replicas --------------------------------------------------------------------


async def test_in_process_replicas_sync_every_workout_once(
    tmp_path: Path, database_url: str, sandbox: tuple[SandboxState, str]
) -> None:
    state, url = sandbox
    replicas = 2 if database_url.startswith("sqlite") else 3
    async with contextlib.AsyncExitStack() as stack:
        runtimes = [
            await stack.enter_async_context(
                # One new workout per poll: every account is polled twice, possibly by two
                # different workers, so leases change hands while the others are polling.
                replica_runtime(tmp_path, database_url, url, f"worker-{i}", max_new_per_poll=1)
            )
            for i in range(replicas)
        ]
        main = runtimes[0]
        await link_all(main, state)
        await add_folder(main, tmp_path / "out")
        jobs = [PollJob(rt) for rt in runtimes]

        async def synced() -> bool:
            await asyncio.gather(*(job.tick() for job in jobs))
            if any(job.running for job in jobs):
                return False
            async with main.sessions() as session:
                left = await session.execute(
                    select(func.count())
                    .select_from(Account)
                    .where(Account.backfill_complete.is_(False))
                )
                return left.scalar_one() == 0

        try:
            await eventually(synced, "every account to be backfilled", within=60, every=0.05)
        finally:
            await asyncio.gather(*(job.drain(10) for job in jobs))
        ledger = await read_ledger(main)

    assert_workouts_once(ledger, expected_workouts(state))
    assert_deliveries_once(ledger, delivered=False)
    assert_runs_never_overlap(ledger)
    assert {run.outcome for run in ledger.runs} == {"ok"}
    per_account: dict[int, int] = defaultdict(int)
    for run in ledger.runs:
        per_account[run.account_id] += 1
    assert set(per_account.values()) == {2}  # two workouts, one per poll: nobody polled twice
    assert {run.worker for run in ledger.runs} == {rt.worker for rt in runtimes}


async def test_a_worker_whose_lease_was_taken_over_writes_nothing(
    tmp_path: Path, database_url: str, sandbox: tuple[SandboxState, str]
) -> None:
    state, url = sandbox
    ahead = timedelta(minutes=10)  # the second worker's clock: the first one's lease has lapsed
    async with (
        replica_runtime(tmp_path, database_url, url, "slow") as slow,
        replica_runtime(tmp_path, database_url, url, "fast") as fast,
    ):
        fast.clock = lambda: utcnow() + ahead
        await link_all(slow, state, limit=3)
        await add_folder(slow, tmp_path / "out")
        lease = timedelta(seconds=30)
        async with slow.sessions() as session, session.begin():
            held, _ = await AccountRepository(session).claim_due(
                owner=slow.worker, now=slow.clock(), lease=lease, limit=3
            )
        async with fast.sessions() as session, session.begin():
            taken, reclaimed = await AccountRepository(session).claim_due(
                owner=fast.worker, now=fast.clock(), lease=lease, limit=3
            )
        assert taken == held and reclaimed == 3
        # Both poll the same accounts at once; only the lease holder's results may land.
        results = await asyncio.gather(
            *(AccountPoller(rt).poll(account_id) for account_id in held for rt in (slow, fast))
        )
        ledger = await read_ledger(slow)

    assert [r.outcome for r in results] == ["lease_lost", "ok"] * 3
    assert [r.new for r in results[1::2]] == [2, 2, 2]
    assert {(run.account_id, run.worker) for run in ledger.runs} == {(a, "fast") for a in held}
    assert len(ledger.runs) == 3
    polled = {user for user, _ in ledger.workouts.values()}
    assert_workouts_once(
        ledger, {user: ids for user, ids in expected_workouts(state).items() if user in polled}
    )
    assert len(polled) == 3
    assert_deliveries_once(ledger, delivered=False)


async def test_sync_once_polls_every_due_account_beyond_the_concurrency(
    tmp_path: Path, database_url: str, sandbox: tuple[SandboxState, str]
) -> None:
    state, url = sandbox
    async with replica_runtime(tmp_path, database_url, url, "once", sync_concurrency=3) as rt:
        await link_all(rt, state, limit=10)
        results = await PollJob(rt).run_once()  # what `pelosync sync --once` runs
        ledger = await read_ledger(rt)

    assert len(results) == 10
    assert all(r is not None and r.outcome == "ok" for r in results.values())
    linked = list(state.accounts)[:10]
    assert_workouts_once(ledger, {u: w for u, w in expected_workouts(state).items() if u in linked})


# --- real processes -------------------------------------------------------------------------


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    """``pelosync serve`` processes on one database; every one is stopped at the end."""

    root: Path
    env: dict[str, str]
    replicas: list[Replica] = field(default_factory=list)

    def start(self, name: str, **env: str) -> Replica:
        port = free_port()
        log = self.root / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from service.cli import main; main()",
                    *("serve", "--host", "127.0.0.1", "--port", str(port)),
                ],
                env={**self.env, "PELOSYNC_WORKER_NAME": name, **env},
                cwd=self.root,  # no stray .env file is read
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: nothing outlives the test
            )
        replica = Replica(name, port, process, log)
        self.replicas.append(replica)
        return replica

    async def ready(self, replicas: list[Replica], within: float = 45) -> None:
        async with httpx.AsyncClient(timeout=2) as client:

            async def all_ready() -> bool:
                for replica in replicas:
                    if replica.process.poll() is not None:
                        pytest.fail(f"{replica.name} exited early:\n{replica.output()}")
                    try:
                        response = await client.get(f"http://127.0.0.1:{replica.port}/readyz")
                    except httpx.HTTPError:
                        return False
                    if response.status_code != 200:
                        return False
                return True

            await eventually(all_ready, "the replicas to be ready", within)

    async def stop(self, replicas: list[Replica], within: float = 30) -> None:
        """SIGTERM, then they must drain and exit 0."""
        for replica in replicas:
            replica.process.send_signal(signal.SIGTERM)

        async def exited() -> bool:
            return all(r.process.poll() is not None for r in replicas)

        await eventually(exited, "the replicas to exit after SIGTERM", within, every=0.1)
        for replica in replicas:
            assert replica.process.returncode == 0, replica.output()

    async def kill(self, replica: Replica) -> None:
        os.killpg(replica.process.pid, signal.SIGKILL)

        async def dead() -> bool:
            return replica.process.poll() is not None

        await eventually(dead, f"{replica.name} to die", 10, every=0.05)

    def close(self) -> None:
        for replica in self.replicas:
            if replica.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(replica.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                replica.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment that lets the replicas share compiled bytecode outside the source tree.

    Each process would otherwise compile every module it imports (seconds per start when
    ``PYTHONDONTWRITEBYTECODE`` is set); one warm-up import fills the cache for all of them.
    """
    if not os.environ.get(PG_ENV):
        pytest.skip(f"PostgreSQL tests need {PG_ENV}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    subprocess.run(
        [sys.executable, "-c", "import service.cli, service.app"], env=env, check=True, timeout=120
    )
    return env


def serve_env(
    tmp_path: Path,
    bytecode_cache: dict[str, str],
    database_url: str,
    sandbox_url: str,
    **extra: str,
) -> dict[str, str]:
    """The environment of a test's ``pelosync serve`` process: fast ticks, short leases."""
    env = {k: v for k, v in bytecode_cache.items() if not k.startswith("PELOSYNC_")}
    env.update(
        PELOSYNC_ENV="testing",
        PELOSYNC_DATABASE_URL=database_url,
        PELOSYNC_SECRET_KEY=TEST_SECRET_KEY,
        PELOSYNC_PELOTON_API_URL=sandbox_url,
        PELOSYNC_PELOTON_AUTH_URL=sandbox_url,
        PELOSYNC_PELOTON_EVERY_N=str(EVERY_N),
        PELOSYNC_TICK_SECONDS="0.3",
        PELOSYNC_LEASE_SECONDS="5",
        # Hundreds of requests to the local sandbox; the budget has its own replica tests.
        PELOSYNC_PELOTON_MAX_RPS="1000",
        PELOSYNC_DATA_DIR=str(tmp_path / "data"),
        PELOSYNC_EXPORT_ROOTS=str(tmp_path),  # the tests' folder destinations
        PELOSYNC_CONVERT_WORKERS="0",
        PELOSYNC_HOST="127.0.0.1",
        PELOSYNC_LOG_LEVEL="INFO",
        **extra,
    )
    return env


@pytest.fixture
def cluster(
    tmp_path: Path, database_url: str, bytecode_cache: dict[str, str]
) -> Iterator[Callable[[str], Cluster]]:
    made: list[Cluster] = []

    def make(sandbox_url: str) -> Cluster:
        made.append(
            Cluster(tmp_path, serve_env(tmp_path, bytecode_cache, database_url, sandbox_url))
        )
        return made[-1]

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


only_postgres = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.mark.postgres
@pytest.mark.slow
@only_postgres
async def test_serve_processes_sync_every_workout_once(
    tmp_path: Path,
    database_url: str,
    sandbox: tuple[SandboxState, str],
    cluster: Callable[[str], Cluster],
) -> None:
    state, url = sandbox
    out = tmp_path / "out"
    replicas = cluster(url)
    async with replica_runtime(tmp_path, database_url, url, "test") as rt:
        await link_all(rt, state)
        await add_folder(rt, out)
        # Nothing is due until every replica ticks, so each one gets a share.
        await set_accounts(rt, paused=True)
        state.latency_ms = 20

        async def run_round(names: list[str]) -> Ledger:
            started = [replicas.start(name, PELOSYNC_SYNC_CONCURRENCY="4") for name in names]
            await replicas.ready(started)
            await set_accounts(rt, paused=False, next_poll_at=utcnow())
            expected = expected_workouts(state)
            total = sum(len(ids) for ids in expected.values())

            async def done() -> bool:
                return await counts(rt) == (total, total * len(FORMATS))

            await eventually(done, "every workout stored and delivered", within=60)
            await replicas.stop(started)
            ledger = await read_ledger(rt)
            assert_workouts_once(ledger, expected)
            assert_deliveries_once(ledger, delivered=True)
            assert_runs_never_overlap(ledger)
            assert_files_match(out, ledger)
            assert set(names) <= {run.worker for run in ledger.runs}, "a replica did nothing"
            return ledger

        first = await run_round(["a1", "a2"])
        assert len(first.workouts) == 2 * USERS
        # Restart with three replicas; every user has one more workout since.
        await set_accounts(rt, paused=True)
        for account in state.accounts.values():
            state.add_workouts(account, kind="cycling_class")
        second = await run_round(["b1", "b2", "b3"])
        assert len(second.workouts) == 3 * USERS
        assert {r.worker for r in second.runs} == {"a1", "a2", "b1", "b2", "b3"}


@pytest.mark.postgres
@pytest.mark.slow
@only_postgres
async def test_survivor_reclaims_the_leases_of_a_killed_replica(
    tmp_path: Path,
    database_url: str,
    sandbox: tuple[SandboxState, str],
    cluster: Callable[[str], Cluster],
) -> None:
    state, url = sandbox
    out = tmp_path / "out"
    replicas = cluster(url)
    async with replica_runtime(tmp_path, database_url, url, "test") as rt:
        await link_all(rt, state)
        # Deliveries wait until after the kill: a delivery lease (at least 120 s, see
        # DeliveryJob.lease) held by the killed replica would outlast this test.
        destination_id = await add_folder(
            rt, out, postponed_until=datetime.now(UTC) + timedelta(hours=1)
        )
        await set_accounts(rt, paused=True)
        state.latency_ms = 300  # polls take seconds: the kill lands in the middle of some
        settings = {"PELOSYNC_PELOTON_CONCURRENCY": "32", "PELOSYNC_SYNC_CONCURRENCY": "8"}
        pair = [replicas.start(name, **settings) for name in ("k1", "k2")]
        await replicas.ready(pair)
        await set_accounts(rt, paused=False, next_poll_at=utcnow())

        leases: dict[str, list[tuple[int, datetime]]] = {}

        async def mid_sync() -> bool:
            async with rt.sessions() as session:
                held = await session.execute(
                    select(Account.lease_owner, Account.id, Account.lease_expires_at).where(
                        Account.lease_owner.is_not(None)
                    )
                )
                runs = await session.execute(select(func.count()).select_from(SyncRun))
                finished = runs.scalar_one()
            leases.clear()
            for owner, account_id, expires in held:
                leases.setdefault(owner, []).append((account_id, expires))
            return finished >= 3 and all(leases.get(r.name) for r in pair)

        await eventually(mid_sync, "both replicas to be polling", within=60, every=0.05)
        victim = max(pair, key=lambda r: len(leases[r.name]))
        survivor = next(r for r in pair if r is not victim)
        await replicas.kill(victim)
        # The victim's leases, read after its death: they include any renewal it made.
        async with rt.sessions() as session:
            held = dict(
                (
                    await session.execute(
                        select(Account.id, Account.lease_expires_at).where(
                            Account.lease_owner == victim.name
                        )
                    )
                ).all()
            )
        assert held

        expected = expected_workouts(state)
        total = sum(len(ids) for ids in expected.values())

        async def stored() -> bool:
            return (await counts(rt))[0] == total

        await eventually(stored, "the survivor to store every workout", within=60)
        async with rt.sessions() as session, session.begin():
            destination = await session.get(Destination, destination_id)
            assert destination is not None
            destination.postponed_until = None

        async def delivered() -> bool:
            return (await counts(rt))[1] == total * len(FORMATS)

        await eventually(delivered, "the survivor to deliver every file", within=60)
        await replicas.stop([survivor])
        ledger = await read_ledger(rt)

    assert victim.process.returncode == -signal.SIGKILL
    assert_workouts_once(ledger, expected)
    assert_deliveries_once(ledger, delivered=True)
    assert_runs_never_overlap(ledger)
    assert_files_match(out, ledger)
    assert {a.worker for a in ledger.attempts} == {survivor.name}
    # The victim's accounts were polled again by the survivor, only once their lease lapsed.
    for account_id, expires in held.items():
        retaken = [
            r for r in ledger.runs if r.account_id == account_id and r.worker == survivor.name
        ]
        assert retaken, f"account {account_id} was never reclaimed"
        assert min(r.started_at for r in retaken) >= expires
    assert "sync.lease.reclaimed" in survivor.output()
