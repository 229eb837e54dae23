"""PostgreSQL restarted mid-run, for real: a private server (started by this module, so the
machine's shared one never goes down under other tests) behind two ``pelosync serve`` processes,
the sandbox Peloton and a loopback webhook receiver.

Twice, while the replicas sync and deliver: first ``pg_ctl restart -m immediate`` (a crash and
a quick recovery), then ``pg_ctl stop -m immediate``, a while down, and ``start``. Readiness must
report the outage and the recovery; the processes must stay up and carry on; no workout may be
lost or stored twice, every delivery made, and never under two different webhook ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from service.accounts.models import Account
from service.db import utcnow
from service.deliveries.models import Delivery
from service.destinations.kinds.webhook import generate_secret
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from tests.accounts.test_replicas import (  # fixtures and helpers, not tests
    FORMATS,
    Cluster,
    Replica,
    assert_workouts_once,
    bytecode_cache,
    counts,
    eventually,
    expected_workouts,
    link_all,
    read_ledger,
    replica_runtime,
    serve_env,
    set_accounts,
)
from tests.destinations.receiver import Answer, Receiver
from tests.reliability.conftest import summary
from tests.reliability.dbfaults import PrivatePostgres, start_private_postgres
from tests.reliability.test_processes import add_webhook

__all__ = ["bytecode_cache"]  # a fixture, used by name

USERS = 8


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this module's own; stopped and deleted whatever happens."""
    try:
        server = start_private_postgres()
    except LookupError as exc:
        pytest.skip(f"no private PostgreSQL server here: {exc}")
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def processes(
    tmp_path: Path, bytecode_cache: dict[str, str]
) -> Iterator[Callable[[str, str], Cluster]]:
    """``pelosync serve`` processes on a given database; every one is killed at the end."""
    made: list[Cluster] = []

    def make(sandbox_url: str, database_url: str) -> Cluster:
        env = serve_env(
            tmp_path,
            bytecode_cache,
            database_url,
            sandbox_url,
            PELOSYNC_WEBHOOK_ALLOW_PRIVATE="true",
            PELOSYNC_WEBHOOK_INLINE_MAX_BYTES=str(4 * 1024 * 1024),
            # One new workout per poll, two polls at a time: syncing lasts long enough for
            # the faults to land in the middle of it.
            PELOSYNC_MAX_NEW_PER_POLL="1",
            PELOSYNC_SYNC_CONCURRENCY="2",
        )
        made.append(Cluster(tmp_path, env))
        return made[-1]

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


@contextlib.asynccontextmanager
async def sandbox(users: int) -> AsyncIterator[tuple[SandboxState, str]]:
    state = SandboxState(SandboxConfig(seed=47, users=users, workouts=2, anchor=int(time.time())))
    async with run_sandbox(state) as url:
        yield state, url


def tick_failures(replica: Replica) -> int:
    return replica.output().count("scheduler.tick.failed")


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_postgres_restart_is_survived(
    tmp_path: Path,
    private_postgres: PrivatePostgres,
    processes: Callable[[str, str], Cluster],
) -> None:
    pg = private_postgres
    database_url = await pg.create_database(f"pelosync_{secrets.token_hex(4)}")
    secret = generate_secret()
    receiver = await Receiver([secret]).start()
    receiver.default = Answer(delay_s=0.3)  # deliveries are in flight when the server goes
    try:
        async with sandbox(USERS) as (state, url):
            state.latency_ms = 100  # and so are polls
            replicas = processes(url, database_url)
            async with replica_runtime(tmp_path, database_url, url, "test") as rt:
                await link_all(rt, state)
                await add_webhook(rt, receiver.url(), secret)
                pair = [replicas.start(name) for name in ("pg1", "pg2")]
                await replicas.ready(pair)

                async def mid_run() -> bool:
                    """Both polls and deliveries are in flight (leased) right now."""
                    async with rt.sessions() as session:
                        polling = await session.execute(
                            select(func.count())
                            .select_from(Account)
                            .where(Account.lease_owner.is_not(None))
                        )
                        delivering = await session.execute(
                            select(func.count())
                            .select_from(Delivery)
                            .where(Delivery.lease_owner.is_not(None), Delivery.state == "pending")
                        )
                        return polling.scalar_one() > 0 and delivering.scalar_one() > 0

                def alive() -> None:
                    for replica in pair:
                        assert replica.process.poll() is None, replica.output()[-5000:]

                # 1. A crash and a quick recovery, in the middle of syncing and delivering.
                await eventually(mid_run, "polls and deliveries in flight", 60, every=0.05)
                await asyncio.to_thread(pg.restart, "immediate")
                await rt.engine.dispose()  # this test's own connections died too
                await replicas.ready(pair, within=60)
                alive()

                # 2. New workouts for everyone, due at once; down for a while in the middle.
                for account in state.accounts.values():
                    state.add_workouts(account, kind="cycling_class")
                await set_accounts(rt, next_poll_at=utcnow())
                await eventually(mid_run, "polls and deliveries in flight", 60, every=0.05)
                failures_before = [tick_failures(r) for r in pair]
                await asyncio.to_thread(pg.stop, "immediate")
                async with httpx.AsyncClient(timeout=10) as client:
                    outage: list[dict[str, Any]] = []

                    async def not_ready() -> bool:
                        outage.clear()
                        for replica in pair:
                            answer = await client.get(f"http://127.0.0.1:{replica.port}/readyz")
                            if answer.status_code != 503:
                                return False
                            outage.append(answer.json()["checks"])
                        return True

                    await eventually(not_ready, "/readyz to report the outage", within=30)
                    assert all(c["database"].startswith("unreachable") for c in outage), outage

                    # The schedulers keep ticking into the dead database, a few times each.
                    async def ticking() -> bool:
                        now = [tick_failures(r) for r in pair]
                        return all(n >= b + 3 for n, b in zip(now, failures_before, strict=True))

                    await eventually(ticking, "ticks to fail against the stopped server", 30)
                    alive()
                    await asyncio.to_thread(pg.start)
                    await rt.engine.dispose()
                    await replicas.ready(pair, within=60)  # /readyz says 200 again
                alive()

                expected = expected_workouts(state)
                total = sum(len(ids) for ids in expected.values())
                assert total == 3 * USERS

                async def done() -> bool:
                    return await counts(rt) == (total, total * len(FORMATS))

                # A claim whose commit landed just as the server died was never answered: its
                # leases are given back at the replica's next tick (or lapse after 5 s).
                await eventually(done, "every workout stored and delivered", within=90)
                await replicas.stop(pair)  # SIGTERM: both drain and exit 0
                ledger = await read_ledger(rt)
    finally:
        await receiver.close()

    for replica in pair:
        # Results that met the dead database were written once it was back (the recorder
        # tries again), not left to wait for their leases to lapse.
        assert "deliveries.attempt.crashed" not in replica.output()
    assert_workouts_once(ledger, expected)  # nothing lost, nothing stored twice
    assert {d.state for d in ledger.deliveries} == {"succeeded"}
    keys = [(d.workout_id, d.destination_id, d.format) for d in ledger.deliveries]
    assert len(keys) == len(set(keys)) == total * len(FORMATS)
    # One attempt row per delivery, and it succeeded: no result was written twice or lost.
    outcomes: dict[int, list[str]] = defaultdict(list)
    for attempt in ledger.attempts:
        outcomes[attempt.delivery_id].append(attempt.outcome)
    assert outcomes == {d.id: ["succeeded"] for d in ledger.deliveries}
    # Every workout x format reached the receiver under one webhook id only.
    assert not receiver.unverified()
    by_message = {d.message_id: d for d in ledger.deliveries}
    ids_per_key: dict[tuple[str, str], set[str]] = defaultdict(set)
    for request in receiver.requests:
        delivery = by_message[request.headers["webhook-id"]]
        data: dict[str, Any] = request.payload.get("data", request.payload)
        assert data["workout"]["id"] == delivery.workout_id
        ids_per_key[(data["workout"]["peloton_workout_id"], delivery.format)].add(
            delivery.message_id
        )
    assert len(ids_per_key) == total * len(FORMATS)
    assert all(len(ids) == 1 for ids in ids_per_key.values())
    summary(
        "postgres-restart",
        faults=pg.restarts + pg.outages,
        survived=len(ids_per_key),
        lost=total * len(FORMATS) - len(ids_per_key),
    )
