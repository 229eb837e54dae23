"""The database cut while a delivery's result is written: the receiver has answered 2xx, and the
connection drops at the recorder's write (on PostgreSQL one statement for the batch, see
``DeliveryRepository.finish_many``), either before the server got it (nothing written) or after
(written, but the answer lost); the database then refuses connections for a while.

Every delivery must end succeeded exactly once in the ledger, with one attempt row, and if it
has to be sent again (the database stayed away longer than the recorder keeps trying), under
the same webhook id. Through a proxy that reads the PostgreSQL protocol (see ``dbfaults``), so
the cut lands at that very statement; the delivery job runs in this process.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from service.deliveries.engine import AttemptOutcome
from service.destinations.kinds.webhook import WebhookConfig, generate_secret
from service.destinations.models import Destination
from tests.destinations.receiver import Receiver
from tests.reliability.conftest import Rig, open_rig, summary
from tests.reliability.dbfaults import CUT_AFTER, CUT_BEFORE, CuttableProxy
from tests.support.waiting import wait_until as until

only_postgres = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
#: How the recorder's single statement for a batch of results begins (finish_many).
RESULT_WRITE = b"WITH V AS"

FORMATS = ["json", "tcx"]
WORKOUTS = 2


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[CuttableProxy]:
    target = make_url(database_url)
    made = await CuttableProxy(target.host or "127.0.0.1", target.port or 5432).start()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = await Receiver([generate_secret()]).start()
    try:
        yield made
    finally:
        await made.close()


def proxied(database_url: str, proxy: CuttableProxy) -> str:
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    return url.render_as_string(hide_password=False)


async def add_webhook(rig: Rig, receiver: Receiver) -> int:
    config, secrets = WebhookConfig(url=receiver.url(), secret=receiver.secrets[0]).split()
    return await rig.add(
        Destination(
            name="hook",
            kind="webhook",
            config=config,
            secrets_encrypted=rig.runtime.secrets.encrypt_json(secrets),
            formats=FORMATS,
            concurrency=8,  # one claim takes every delivery: their results are written together
            enabled=True,
        )
    )


async def synced_with_webhook(rig: Rig, receiver: Receiver) -> tuple[int, list[Any]]:
    """A webhook to ``receiver``, a linked account polled: its id and the pending deliveries."""
    await add_webhook(rig, receiver)
    account = await rig.link()
    await rig.poll_until_done(account.id)
    return account.id, await rig.deliveries()


async def assert_ledger(rig: Rig, receiver: Receiver, sends: int) -> None:
    """Every delivery succeeded once, with one attempt row that says so, and reached the
    receiver ``sends`` times, always under its own webhook id."""
    deliveries = await rig.deliveries()
    assert {d.state for d in deliveries} == {"succeeded"}
    assert all(d.attempts == 1 for d in deliveries)
    attempts = await rig.attempts()
    assert sorted((a.delivery_id, a.number, a.outcome) for a in attempts) == sorted(
        (d.id, 1, "succeeded") for d in deliveries
    )
    assert not receiver.unverified()
    ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert ids == {d.message_id: sends for d in deliveries}
    for request in receiver.requests:  # the same delivery each time, not another's id
        delivery = next(d for d in deliveries if d.message_id == request.headers["webhook-id"])
        data: dict[str, Any] = request.payload.get("data", request.payload)
        assert data["workout"]["id"] == delivery.workout_id
        assert data["files"][0]["format"] == delivery.format


async def carry_on(rig: Rig, account_id: int, receiver: Receiver) -> int:
    """One more workout, synced and delivered: the job and its recorder still work."""
    before = len(receiver.requests)
    user = next(iter(rig.sandbox.accounts.values()))
    rig.sandbox.add_workouts(user, kind="cycling_class")
    rig.clock.advance(hours=2)
    await rig.poll_until_done(account_id)
    await rig.job.run_until_idle()
    fresh = [d for d in await rig.deliveries() if d.state != "succeeded"]
    assert fresh == []
    return len(receiver.requests) - before


@pytest.mark.postgres
@only_postgres
@pytest.mark.parametrize("mode", ["before-write", "after-write"])
async def test_a_result_write_cut_is_retried_and_recorded_once(
    tmp_path: Path, database_url: str, proxy: CuttableProxy, receiver: Receiver, mode: str
) -> None:
    async with open_rig(tmp_path, proxied(database_url, proxy), workouts=WORKOUTS) as rig:
        account_id, deliveries = await synced_with_webhook(rig, receiver)
        assert len(deliveries) == WORKOUTS * len(FORMATS)
        sprung = proxy.arm(
            after=b"",
            then=RESULT_WRITE,
            mode=CUT_BEFORE if mode == "before-write" else CUT_AFTER,
            close=True,  # and the database refuses connections until restored
        )
        with capture_logs() as logs:
            claimed = await rig.job.tick()
            assert sorted(claimed) == sorted(d.id for d in deliveries)
            attempts = list(rig.job.running.values())
            await asyncio.wait_for(sprung.wait(), 30)
            # Every request reached the receiver before its result was written.
            await until(lambda: len(receiver.requests) == len(deliveries), "every request")
            # The recorder keeps trying while the database is away...
            await until(lambda: proxy.refused >= 3, "the recorder to try again")
            assert not any(task.done() for task in attempts)
            proxy.restore()
            # ...and writes every result once it is back.
            results = await asyncio.wait_for(asyncio.gather(*attempts), 60)
            await rig.job.run_until_idle()

        # Nothing crashed; a result whose commit landed before the cut is found written (its
        # lease released) and not written again.
        assert all(isinstance(result, AttemptOutcome) for result in results), results
        outcomes = {result.outcome for result in results if result is not None}
        assert outcomes == {"succeeded"}  # a landed commit reads as written, not a lost lease
        events = [entry["event"] for entry in logs]
        assert "deliveries.lease_lost" not in events
        assert "deliveries.attempt.crashed" not in events
        assert "deliveries.recorder.retry" in events
        await assert_ledger(rig, receiver, sends=1)  # nothing sent twice
        more = await carry_on(rig, account_id, receiver)
        assert more == len(FORMATS)

    summary(
        f"db-cut-at-result-write-{mode}",
        faults=proxy.cuts,
        survived=len(deliveries),
        lost=0,
    )


@pytest.mark.postgres
@only_postgres
async def test_a_result_lost_with_the_database_is_sent_again_under_the_same_webhook_id(
    tmp_path: Path, database_url: str, proxy: CuttableProxy, receiver: Receiver
) -> None:
    async with open_rig(tmp_path, proxied(database_url, proxy), workouts=WORKOUTS) as rig:
        account_id, deliveries = await synced_with_webhook(rig, receiver)
        # The database stays away longer than the recorder keeps trying.
        rig.job.runner.recorder.retry_for = 0.5
        sprung = proxy.arm(after=b"", then=RESULT_WRITE, mode=CUT_BEFORE, close=True)
        with capture_logs() as logs:
            await rig.job.tick()
            attempts = list(rig.job.running.values())
            await asyncio.wait_for(sprung.wait(), 30)
            results = await asyncio.wait_for(asyncio.gather(*attempts), 60)
            assert results == [None] * len(deliveries)  # logged as crashed; the process lives
        crashed = [e for e in logs if e["event"] == "deliveries.attempt.crashed"]
        assert len(crashed) == len(deliveries)
        assert len(receiver.requests) == len(deliveries)
        proxy.restore()

        # Nothing was written: each delivery is still pending, leased to this worker until its
        # lease lapses; then it is sent again, under its own webhook id, and recorded.
        pending = await rig.deliveries()
        assert {(d.state, d.attempts, d.lease_owner) for d in pending} == {
            ("pending", 0, rig.runtime.worker)
        }
        assert await rig.attempts() == []
        await rig.job.run_until_idle()
        assert len(receiver.requests) == len(deliveries)  # not before the lease lapses
        rig.clock.advance(seconds=rig.job.lease.total_seconds() + 1)
        await rig.job.run_until_idle()
        await assert_ledger(rig, receiver, sends=2)
        more = await carry_on(rig, account_id, receiver)
        assert more == len(FORMATS)

    summary(
        "db-cut-at-result-write-outlasting-retries",
        faults=proxy.cuts,
        survived=len(deliveries),
        lost=0,
    )
