"""Real ``pelosync serve`` processes on PostgreSQL: a replica SIGKILLed while it holds delivery
leases, and the database connection cut and restored under a running process (through a TCP
proxy in this test; test_database_restart.py restarts a private server for real)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from service.db import utcnow
from service.deliveries.models import Delivery
from service.destinations.kinds.webhook import WebhookConfig, generate_secret
from service.destinations.models import Destination
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.runtime import Runtime
from tests.accounts.test_replicas import (  # fixtures and helpers, not tests
    FORMATS,
    Cluster,
    add_folder,
    assert_deliveries_once,
    assert_files_match,
    assert_workouts_once,
    bytecode_cache,
    cluster,
    counts,
    eventually,
    expected_workouts,
    link_all,
    read_ledger,
    replica_runtime,
    set_accounts,
)
from tests.destinations.receiver import Answer, Receiver
from tests.reliability.conftest import summary
from tests.reliability.dbfaults import CuttableProxy

__all__ = ["bytecode_cache", "cluster"]  # fixtures, used by name

only_postgres = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@contextlib.asynccontextmanager
async def small_sandbox(users: int) -> AsyncIterator[tuple[SandboxState, str]]:
    state = SandboxState(SandboxConfig(seed=31, users=users, workouts=2, anchor=int(time.time())))
    async with run_sandbox(state) as url:
        yield state, url


# --- a replica killed while delivering ------------------------------------------------------


async def add_webhook(rt: Runtime, url: str, secret: str) -> int:
    config, secrets = WebhookConfig(url=url, secret=secret).split()
    async with rt.sessions() as session, session.begin():
        destination = Destination(
            name="slow hook",
            kind="webhook",
            config=config,
            secrets_encrypted=rt.secrets.encrypt_json(secrets),
            formats=FORMATS,
            concurrency=3,
            enabled=True,
        )
        session.add(destination)
        await session.flush()
        return destination.id


@pytest.mark.postgres
@pytest.mark.slow
@only_postgres
async def test_deliveries_of_a_killed_replica_are_made_by_the_survivor(
    tmp_path: Path, database_url: str, cluster: Callable[[str], Cluster]
) -> None:
    secret = generate_secret()
    receiver = await Receiver([secret]).start()
    receiver.default = Answer(delay_s=1.0)  # a slow receiver: attempts are in flight for 1 s
    try:
        async with small_sandbox(users=6) as (state, url):
            replicas = cluster(url)
            async with replica_runtime(tmp_path, database_url, url, "test") as rt:
                await link_all(rt, state)
                await add_webhook(rt, receiver.url(), secret)
                env = {
                    "PELOSYNC_WEBHOOK_ALLOW_PRIVATE": "true",
                    "PELOSYNC_WEBHOOK_INLINE_MAX_BYTES": str(4 * 1024 * 1024),
                    "PELOSYNC_LEASE_SECONDS": "6",
                }
                pair = [replicas.start(name, **env) for name in ("d1", "d2")]
                await replicas.ready(pair)
                expected = expected_workouts(state)
                total = sum(len(ids) for ids in expected.values())

                async def stored() -> bool:
                    return (await counts(rt))[0] == total

                await eventually(stored, "every workout to be stored", within=60)
                leases: dict[str, int] = {}

                async def both_delivering() -> bool:
                    async with rt.sessions() as session:
                        rows = await session.execute(
                            select(Delivery.lease_owner).where(
                                Delivery.lease_owner.is_not(None), Delivery.state == "pending"
                            )
                        )
                        owners = [owner for (owner,) in rows if owner]
                    leases.clear()
                    for owner in owners:
                        leases[owner] = leases.get(owner, 0) + 1
                    return all(leases.get(r.name) for r in pair)

                await eventually(both_delivering, "both replicas to hold deliveries", 60, 0.05)
                victim = max(pair, key=lambda r: leases.get(r.name, 0))
                survivor = next(r for r in pair if r is not victim)
                await replicas.kill(victim)
                # Its leases (6 s, renewed every 2 s while it lived) lapse on their own and the
                # survivor takes the deliveries over.
                async with rt.sessions() as session:
                    orphaned = (
                        await session.execute(
                            select(Delivery.id).where(Delivery.lease_owner == victim.name)
                        )
                    ).all()
                assert orphaned, "the victim held no delivery when it died"

                async def delivered() -> bool:
                    return (await counts(rt))[1] == total * len(FORMATS)

                await eventually(delivered, "the survivor to make every delivery", within=60)
                await replicas.stop([survivor])
                ledger = await read_ledger(rt)
    finally:
        await receiver.close()

    assert victim.process.returncode == -signal.SIGKILL
    assert_workouts_once(ledger, expected)
    assert {d.state for d in ledger.deliveries} == {"succeeded"}
    keys = [(d.workout_id, d.destination_id, d.format) for d in ledger.deliveries]
    assert len(keys) == len(set(keys))
    by_message = {d.message_id: d for d in ledger.deliveries}
    assert not receiver.unverified()
    # Every workout x destination x format reached the receiver under one webhook id only;
    # the same id twice is at-least-once (the victim died before recording its attempt).
    ids_per_key: dict[tuple[str, str], set[str]] = defaultdict(set)
    for request in receiver.requests:
        message_id = request.headers["webhook-id"]
        assert message_id in by_message
        data: dict[str, Any] = request.payload.get("data", request.payload)
        delivery = by_message[message_id]
        assert data["files"][0]["format"] == delivery.format
        assert data["workout"]["id"] == delivery.workout_id
        ids_per_key[(data["workout"]["peloton_workout_id"], delivery.format)].add(message_id)
    assert len(ids_per_key) == total * len(FORMATS)
    assert all(len(ids) == 1 for ids in ids_per_key.values())
    # What the victim held was made by the survivor.
    made_by = {(a.delivery_id, a.worker) for a in ledger.attempts if a.outcome == "succeeded"}
    assert all((delivery_id, survivor.name) in made_by for (delivery_id,) in orphaned)
    summary(
        "sigkill-during-deliveries",
        faults=len(orphaned),  # deliveries in flight at the kill, sent again (same ids)
        survived=len(ids_per_key),
        lost=total * len(FORMATS) - len(ids_per_key),
    )


# --- the database connection cut and restored -----------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
@only_postgres
async def test_a_lost_database_connection_is_survived(
    tmp_path: Path, database_url: str, cluster: Callable[[str], Cluster]
) -> None:
    target = make_url(database_url)
    proxy = await CuttableProxy(target.host or "127.0.0.1", target.port or 5432).start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    out = tmp_path / "out"
    try:
        async with small_sandbox(users=4) as (state, url):
            replicas = cluster(url)
            replicas.env["PELOSYNC_DATABASE_URL"] = proxied
            async with replica_runtime(tmp_path, database_url, url, "test") as rt:
                await link_all(rt, state)
                await add_folder(rt, out)
                (replica,) = [replicas.start("p1")]
                await replicas.ready([replica])
                first = sum(len(ids) for ids in expected_workouts(state).values())

                async def synced(total: int) -> bool:
                    return await counts(rt) == (total, total * len(FORMATS))

                try:
                    await eventually(lambda: synced(first), "the first sync", within=60)
                except BaseException:
                    print(replica.output()[-5000:], await counts(rt))
                    raise

                async with httpx.AsyncClient(timeout=10) as client:
                    readyz = f"http://127.0.0.1:{replica.port}/readyz"
                    proxy.cut()
                    # New workouts while the database is out of reach: due at once.
                    for account in state.accounts.values():
                        state.add_workouts(account, kind="cycling_class")
                    await set_accounts(rt, next_poll_at=utcnow())
                    answers: list[httpx.Response] = []

                    async def not_ready() -> bool:
                        answers.append(await client.get(readyz))
                        return answers[-1].status_code == 503

                    await eventually(not_ready, "/readyz to report the outage", within=30)
                    checks = answers[-1].json()["checks"]
                    assert checks["database"].startswith("unreachable"), checks
                    await asyncio.sleep(3)  # ten scheduler ticks into a dead database
                    assert replica.process.poll() is None, replica.output()
                    assert (await client.get(readyz)).status_code == 503
                    assert await counts(rt) == (first, first * len(FORMATS))

                    proxy.restore()

                    async def ready() -> bool:
                        return (await client.get(readyz)).status_code == 200

                    await eventually(ready, "/readyz to recover", within=30)
                total = sum(len(ids) for ids in expected_workouts(state).values())
                assert total > first
                await eventually(lambda: synced(total), "syncing to carry on", within=60)
                await replicas.stop([replica])
                ledger = await read_ledger(rt)
    finally:
        await proxy.close()

    assert_workouts_once(ledger, expected_workouts(state))
    assert_deliveries_once(ledger, delivered=True)
    assert_files_match(out, ledger)
    summary("database-connection-lost", faults=proxy.cuts, survived=total, lost=0)
