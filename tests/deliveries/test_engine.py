"""The delivery engine end to end, on SQLite and PostgreSQL.

Workouts arrive from the sandbox Peloton through ``PollJob``; ``DeliveryJob`` sends them over
real HTTP to receivers on loopback that verify every request with ``standardwebhooks`` (or into
a real folder). A fake ``runtime.clock`` walks the retry schedule without waiting.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import select

from service.accounts.models import Account
from service.accounts.tokens import decrypt_tokens
from service.convert.pool import render_bundle
from service.deliveries import service as deliveries_service
from service.deliveries.models import Delivery, DeliveryAttempt, DeliveryState
from service.deliveries.retry import JITTER, MAX_ATTEMPTS, SCHEDULE_S
from service.destinations.models import Destination
from service.errors import Conflict, NotFound
from tests.deliveries.conftest import Engine, open_engine
from tests.destinations.receiver import Answer, Receiver, refuse_the_first_message


def seconds(later: datetime | None, earlier: datetime) -> float:
    assert later is not None
    return (later - earlier).total_seconds()


def ids_of(receiver: Receiver) -> list[str]:
    return [r.headers["webhook-id"] for r in receiver.requests]


async def walk(engine: Engine, *, until: datetime | None = None, steps: int = 40) -> None:
    """Deliver what is due, then jump the clock to the next due delivery, and so on until
    nothing is pending on an enabled destination (or the next one is after ``until``)."""
    for _ in range(steps):
        await engine.run()
        async with engine.runtime.sessions() as session:
            upcoming = (
                await session.execute(
                    select(Delivery.next_attempt_at)
                    .join(Destination, Destination.id == Delivery.destination_id)
                    .where(Delivery.state == DeliveryState.PENDING, Destination.enabled.is_(True))
                    .order_by(Delivery.next_attempt_at)
                    .limit(1)
                )
            ).scalar_one_or_none()
        if upcoming is None or (until is not None and upcoming > until):
            return
        engine.clock.set(max(upcoming, engine.clock.now))
    raise AssertionError("deliveries never settled")


# --- success -------------------------------------------------------------------------------


async def test_success_is_recorded_and_the_payload_carries_the_converted_file(
    engine: Engine, secret: str
) -> None:
    body = json.dumps({"received": True, "pad": "x" * 6000}).encode()
    receiver = await engine.receiver(secret, Answer(status=202, body=body, delay_s=0.05))
    destination = await engine.webhook(receiver.url(), secret)
    account = await engine.link_and_poll()
    workouts = await engine.workouts()
    assert len(workouts) == 2

    await engine.run()

    now = engine.clock.now
    deliveries = await engine.deliveries(destination.id)
    assert sorted(d.workout_id for d in deliveries) == sorted(workouts)
    by_id = {r.headers["webhook-id"]: r for r in receiver.requests}
    assert sorted(by_id) == sorted(d.message_id for d in deliveries)  # one request each
    for delivery in deliveries:
        assert delivery.state == DeliveryState.SUCCEEDED
        assert delivery.attempts == 1
        assert delivery.delivered_at == now
        assert delivery.next_attempt_at is None
        assert delivery.last_status_code == 202
        assert delivery.last_error is None
        assert delivery.lease_owner is None
        assert delivery.external_id is None  # a webhook answers no id of its own
        (attempt,) = await engine.attempts(delivery.id)
        assert attempt.number == 1
        assert attempt.outcome == "succeeded"
        assert attempt.worker == engine.runtime.worker
        assert attempt.started_at == now
        assert attempt.status_code == 202
        assert attempt.duration_ms >= 50  # the receiver took 50 ms to answer
        assert attempt.response_excerpt == body[:4096].decode()
        assert attempt.error is None and attempt.error_class is None

        # What the receiver verified and decoded is the workout's file, byte for byte.
        workout = workouts[delivery.workout_id]
        payload = by_id[delivery.message_id].payload
        assert payload["type"] == "workout.synced"
        assert payload["data"]["account"]["id"] == account.id
        assert payload["data"]["workout"]["peloton_workout_id"] == workout.peloton_workout_id
        assert payload["data"]["workout"]["title"] == workout.title
        (entry,) = payload["data"]["files"]
        data = base64.b64decode(entry["content_base64"])
        assert data == render_bundle(workout.bundle(), "json")
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data) and entry["format"] == "json"
        assert json.loads(data)  # the JSON export itself parses
    stored = await engine.destination(destination.id)
    assert stored.last_success_at == now
    assert stored.failing_since is None
    assert engine.job.running == {}


# --- the retry schedule ----------------------------------------------------------------------


async def test_retries_follow_the_schedule_with_one_message_id_then_fail(
    tmp_path: Path, database_url: str, secret: str
) -> None:
    async with open_engine(tmp_path, database_url, workouts=1) as engine:
        receiver = await engine.receiver(secret, Answer(status=500, body=b"boom"))
        destination = await engine.webhook(receiver.url(), secret)
        await engine.link_and_poll()
        (delivery,) = await engine.deliveries()
        started = engine.clock.now
        delays = []
        for number in range(1, MAX_ATTEMPTS + 1):
            await engine.run()
            assert len(receiver.requests) == number
            delivery = await engine.delivery(delivery.id)
            assert delivery.attempts == number
            assert delivery.last_status_code == 500
            if number == MAX_ATTEMPTS:
                break
            assert delivery.state == DeliveryState.PENDING
            delay = seconds(delivery.next_attempt_at, engine.clock.now)
            base = SCHEDULE_S[number]
            assert base * (1 - JITTER) <= delay <= base * (1 + JITTER), (number, delay)
            delays.append(delay)
            # Not a moment early: a second before it is due, nothing is sent.
            engine.clock.set(engine.clock.now + timedelta(seconds=delay - 1))
            assert await engine.job.tick() == []
            assert len(receiver.requests) == number
            engine.clock.set(delivery.next_attempt_at)  # type: ignore[arg-type]

        assert delivery.state == DeliveryState.FAILED
        assert delivery.next_attempt_at is None
        assert delivery.last_error == "127.0.0.1 answered HTTP 500"
        assert any(d != base for d, base in zip(delays, SCHEDULE_S[1:], strict=False))  # jittered
        assert 0.8 * sum(SCHEDULE_S) <= seconds(engine.clock.now, started) <= 1.2 * sum(SCHEDULE_S)
        # The receiver saw the same message eight times, each freshly signed.
        assert ids_of(receiver) == [delivery.message_id] * MAX_ATTEMPTS
        attempts = await engine.attempts(delivery.id)
        assert [a.number for a in attempts] == list(range(1, MAX_ATTEMPTS + 1))
        assert [a.outcome for a in attempts] == ["retry"] * (MAX_ATTEMPTS - 1) + ["failed"]
        assert {a.status_code for a in attempts} == {500}
        assert {a.response_excerpt for a in attempts} == {"boom"}
        # 27.5 hours of failures: remembered, but far from the 5 days that disable.
        stored = await engine.destination(destination.id)
        assert stored.failing_since == started
        assert stored.enabled and stored.disabled_reason is None
        assert await engine.job.tick() == []  # failed deliveries are not retried on their own


async def test_retry_after_on_429_and_503_only_lengthens_the_wait(
    tmp_path: Path, database_url: str, secret: str
) -> None:
    # Jitter pinned at +20 %: 6 s, 360 s, 2160 s, 8640 s for attempts 1-4.
    async with open_engine(tmp_path, database_url, workouts=1, jitter_at=1.0) as engine:
        receiver = await engine.receiver(secret)
        receiver.answers = [
            Answer(status=429, headers=[("retry-after", "120")]),
            Answer(status=503, headers=[("retry-after", "900")]),
            Answer(status=503, headers=[("retry-after", "1")]),  # shorter: the schedule wins
            Answer(status=429, headers=[("retry-after", str(30 * 86400))]),  # capped at 10 h
            Answer(status=429),  # no Retry-After: a minute's penalty, then the schedule's 5 h
        ]
        await engine.webhook(receiver.url(), secret)
        await engine.link_and_poll()
        (delivery,) = await engine.deliveries()
        waits = []
        for _ in receiver.answers[:]:
            await engine.run()
            delivery = await engine.delivery(delivery.id)
            waits.append(round(seconds(delivery.next_attempt_at, engine.clock.now), 3))
            engine.clock.set(delivery.next_attempt_at)  # type: ignore[arg-type]
        assert waits == [120, 900, 2160, 36000, 18000 * 1.2]
        await engine.run()
        delivery = await engine.delivery(delivery.id)
        assert delivery.state == DeliveryState.SUCCEEDED
        statuses = [a.status_code for a in await engine.attempts(delivery.id)]
        assert statuses == [429, 503, 503, 429, 429, 200]
        assert ids_of(receiver) == [delivery.message_id] * 6


async def test_redirects_are_not_followed_but_retried(engine: Engine, secret: str) -> None:
    elsewhere = await engine.receiver(secret)
    receiver = await engine.receiver(secret, Answer(status=200))
    receiver.answers = [
        Answer(status=307, headers=[("location", elsewhere.url())]),
        Answer(status=301, headers=[("location", elsewhere.url())]),
    ]
    await engine.webhook(receiver.url(), secret)
    await engine.link_and_poll()
    await engine.run()

    deliveries = await engine.deliveries()
    assert [d.state for d in deliveries] == [DeliveryState.PENDING] * 2
    for delivery in deliveries:
        assert delivery.last_status_code in (301, 307)
        assert delivery.last_error is not None
        assert "redirects are not followed" in delivery.last_error
        assert elsewhere.url() in delivery.last_error
        (attempt,) = await engine.attempts(delivery.id)
        assert attempt.outcome == "retry"
    assert elsewhere.requests == []

    await walk(engine)
    deliveries = await engine.deliveries()
    assert [d.state for d in deliveries] == [DeliveryState.SUCCEEDED] * 2
    assert sorted(ids_of(receiver)) == sorted(2 * [d.message_id for d in deliveries])
    assert elsewhere.requests == []


# --- disabling and resuming ------------------------------------------------------------------


async def test_gone_disables_the_destination_and_re_enabling_resumes(
    engine: Engine, secret: str
) -> None:
    receiver = await engine.receiver(secret, Answer(status=410, body=b"no such hook"))
    destination = await engine.webhook(receiver.url(), secret, concurrency=1)
    await engine.link_and_poll()
    await engine.run()

    stored = await engine.destination(destination.id)
    assert not stored.enabled
    assert stored.disabled_reason == (
        "gone: 127.0.0.1 answered HTTP 410 (Gone): the receiver says it no longer exists"
    )
    deliveries = await engine.deliveries()
    # Kept pending, not counted: nothing is lost while the destination is off.
    assert [(d.state, d.attempts) for d in deliveries] == [(DeliveryState.PENDING, 0)] * 2
    attempts = await engine.attempts()
    assert len(attempts) == len(receiver.requests) == 1  # the second was never sent
    assert attempts[0].outcome == "parked" and attempts[0].status_code == 410
    assert attempts[0].error_class == "DestinationGone"

    engine.clock.advance(days=2)
    await engine.run()
    assert len(receiver.requests) == 1

    receiver.default = Answer(status=200)
    await engine.update_destination(destination.id, enabled=True, disabled_reason=None)
    await engine.run()
    deliveries = await engine.deliveries()
    assert [d.state for d in deliveries] == [DeliveryState.SUCCEEDED] * 2
    assert [d.attempts for d in deliveries] == [1, 1]
    assert sorted(ids_of(receiver)[1:]) == sorted(d.message_id for d in deliveries)
    assert ids_of(receiver)[0] in ids_of(receiver)[1:]  # the parked message, same id


async def test_five_days_without_a_success_disable_and_re_enabling_resumes(
    tmp_path: Path, database_url: str, secret: str
) -> None:
    # Jitter pinned at its middle: the schedule's 27.6 h exactly (5 s, 5 min, ... 10 h, 10 h).
    async with open_engine(tmp_path, database_url, jitter_at=0.5) as engine:
        await _five_days_without_a_success(engine, secret)


async def _five_days_without_a_success(engine: Engine, secret: str) -> None:
    receiver = await engine.receiver(secret, Answer(status=500))
    destination = await engine.webhook(receiver.url(), secret, concurrency=1)
    await engine.link_and_poll()
    first, second = await engine.deliveries()
    began = engine.clock.now
    await walk(engine)  # both run out of retries after ~27.6 h: failed, still enabled
    assert {d.state for d in await engine.deliveries()} == {DeliveryState.FAILED}
    stored = await engine.destination(destination.id)
    assert stored.enabled and stored.failing_since == began

    # Four days in, someone retries the first by hand: six attempts in the first 7.6 h...
    retried_at = engine.clock.set(began + timedelta(days=4, hours=3))
    async with engine.runtime.sessions() as session, session.begin():
        await deliveries_service.retry_delivery(session, first.id, engine.clock.now)
    await walk(engine, until=retried_at + timedelta(hours=12))
    # (the log numbers them 9 to 14, after the first budget's 8)
    assert (await engine.delivery(first.id)).attempts == MAX_ATTEMPTS + 6
    # ...then the second too; the first runs out (day five is past) while the second has
    # attempts left.
    async with engine.runtime.sessions() as session, session.begin():
        await deliveries_service.retry_delivery(session, second.id, engine.clock.now)
    await walk(engine)

    stored = await engine.destination(destination.id)
    assert not stored.enabled
    assert stored.disabled_reason == f"failing without a success since {began:%Y-%m-%d %H:%M} UTC"
    first = await engine.delivery(first.id)
    second = await engine.delivery(second.id)
    assert first.state == DeliveryState.FAILED and first.attempts == 2 * MAX_ATTEMPTS
    assert seconds(engine.clock.now, began) >= 5 * 86400
    assert second.state == DeliveryState.PENDING
    assert MAX_ATTEMPTS < second.attempts < 2 * MAX_ATTEMPTS
    sent = len(receiver.requests)

    # Disabled: nothing goes out however long we wait.
    engine.clock.advance(days=3)
    await engine.run()
    assert len(receiver.requests) == sent

    receiver.default = Answer(status=200)
    await engine.update_destination(destination.id, enabled=True, disabled_reason=None)
    await engine.run()
    second = await engine.delivery(second.id)
    assert second.state == DeliveryState.SUCCEEDED
    assert ids_of(receiver)[-1] == second.message_id
    stored = await engine.destination(destination.id)
    assert stored.failing_since is None and stored.last_success_at == engine.clock.now
    assert (await engine.delivery(first.id)).state == DeliveryState.FAILED  # not resumed


# --- by hand: retry and replay ---------------------------------------------------------------


async def test_manual_retry_keeps_the_message_id_and_replay_sends_new_ones(
    engine: Engine, secret: str
) -> None:
    receiver = await engine.receiver(secret, Answer(status=200))
    # The first message is refused as too large, inline and then as a link: failed for good.
    refuse_the_first_message(receiver)
    destination = await engine.webhook(receiver.url(), secret, concurrency=1)
    await engine.link_and_poll()
    await engine.run()
    failed, succeeded = sorted(
        await engine.deliveries(), key=lambda d: d.state != DeliveryState.FAILED
    )
    assert (failed.state, failed.attempts) == (DeliveryState.FAILED, 1)
    assert succeeded.state == DeliveryState.SUCCEEDED
    assert ids_of(receiver) == [failed.message_id, failed.message_id, succeeded.message_id]
    receiver.rule = None

    engine.clock.advance(hours=3)
    async with engine.runtime.sessions() as session, session.begin():
        await deliveries_service.retry_delivery(session, failed.id, engine.clock.now)
        with pytest.raises(Conflict, match="already succeeded"):
            await deliveries_service.retry_delivery(session, succeeded.id, engine.clock.now)
        with pytest.raises(NotFound):
            await deliveries_service.retry_delivery(session, 10_000, engine.clock.now)
    await engine.run()
    retried = await engine.delivery(failed.id)
    # Attempt numbers go on across the manual retry: two attempts, numbered 1 and 2.
    assert retried.state == DeliveryState.SUCCEEDED and retried.attempts == 2
    assert retried.message_id == failed.message_id
    assert ids_of(receiver)[-1] == failed.message_id
    log = await engine.attempts(failed.id)
    assert [(a.number, a.status_code) for a in log] == [(1, 413), (2, 200)]

    # Replay only the older workout's day: one new message, a new id.
    workouts = await engine.workouts()
    older, newer = sorted(workouts.values(), key=lambda w: w.started_at)
    start, end = older.started_at, older.started_at + timedelta(seconds=1)
    assert newer.started_at >= end
    async with engine.runtime.sessions() as session, session.begin():
        queued = await deliveries_service.replay(
            session, destination.id, start=start, end=end, now=engine.clock.now
        )
    assert queued == 1
    before = {d.id: d.message_id for d in await engine.deliveries()}
    await engine.run()
    after = {d.id: d for d in await engine.deliveries()}
    replayed = next(d for d in after.values() if d.workout_id == older.id)
    assert replayed.state == DeliveryState.SUCCEEDED
    assert replayed.message_id not in (failed.message_id, succeeded.message_id)
    assert ids_of(receiver)[-1] == replayed.message_id
    untouched = next(d for d in after.values() if d.workout_id != older.id)
    assert untouched.message_id == before[untouched.id]
    assert len(receiver.requests) == 5

    # Replay everything: every workout again, each under yet another new id.
    async with engine.runtime.sessions() as session, session.begin():
        queued = await deliveries_service.replay(
            session,
            destination.id,
            start=start - timedelta(days=3650),
            end=engine.clock.now,
            now=engine.clock.now,
        )
    assert queued == 2
    await engine.run()
    latest = await engine.deliveries()
    assert all(d.state == DeliveryState.SUCCEEDED for d in latest)
    assert len(receiver.requests) == 7
    assert len(set(ids_of(receiver))) == 5  # one retry reused its id; every replay is new
    assert sorted(ids_of(receiver)[-2:]) == sorted(d.message_id for d in latest)


# --- isolation -------------------------------------------------------------------------------


async def test_a_dead_destination_does_not_delay_a_healthy_one(
    tmp_path: Path, database_url: str, secret: str
) -> None:
    async with open_engine(tmp_path, database_url, workouts=3, webhook_timeout_s=1.0) as engine:
        # One slot each: the dead destination needs three timeouts, one after the other.
        dead = await engine.receiver(secret, Answer(status=200, delay_s=30))  # never in time
        healthy = await engine.receiver(secret)
        dead_destination = await engine.webhook(dead.url(), secret, concurrency=1, name="dead")
        healthy_destination = await engine.webhook(healthy.url(), secret, concurrency=1)
        await engine.link_and_poll()
        running = asyncio.create_task(engine.run())
        try:
            async with asyncio.timeout(30):  # a guard against hanging, not a timing assertion
                while True:
                    done = await engine.deliveries(healthy_destination.id)
                    if all(d.state == DeliveryState.SUCCEEDED for d in done):
                        break
                    await asyncio.sleep(0.01)
                # Every healthy message is through while the dead destination is still
                # working through its timeouts: it has not even sent all of its own yet.
                assert len(healthy.requests) == 3
                assert 1 <= len(dead.requests) < 3
                dead_ids = {d.id for d in await engine.deliveries(dead_destination.id)}
                assert len([a for a in await engine.attempts() if a.delivery_id in dead_ids]) < 3
                await running
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

        assert len(dead.requests) == 3
        for delivery in await engine.deliveries(dead_destination.id):
            assert delivery.state == DeliveryState.PENDING and delivery.attempts == 1
            assert delivery.last_error is not None
            assert delivery.last_error.startswith("127.0.0.1 did not answer")
            # A receiver that timed out gets at least the minute's overload penalty.
            assert seconds(delivery.next_attempt_at, engine.clock.now) >= 60


# --- folder destination ----------------------------------------------------------------------


@dataclass(frozen=True)
class FileFacts:
    data: bytes
    mode: int
    inode: int
    mtime_ns: int


def files_under(root: Path) -> dict[Path, FileFacts]:
    """Every file below ``root`` (temporary ones included) with its bytes and identity."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            info = path.stat()
            found[path] = FileFacts(
                path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_ino, info.st_mtime_ns
            )
    return found


async def test_folder_writes_atomically_and_a_retry_is_idempotent(engine: Engine) -> None:
    root = engine.runtime.settings.data_dir / "export"
    await asyncio.to_thread(root.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(root.write_bytes, b"a file where the folder should be")
    destination = await engine.folder(root)
    await engine.link_and_poll()
    await engine.run()
    deliveries = await engine.deliveries()
    assert [d.state for d in deliveries] == [DeliveryState.PENDING] * 2  # retried, not failed
    assert all(d.last_error and f"creating {root}" in d.last_error for d in deliveries)

    await asyncio.to_thread(root.unlink)  # the operator fixes the mount
    await walk(engine)
    workouts = await engine.workouts()
    files = files_under(root)
    expected = {}
    for delivery in await engine.deliveries():
        assert delivery.state == DeliveryState.SUCCEEDED and delivery.attempts == 2
        workout = workouts[delivery.workout_id]
        assert delivery.external_id is not None
        path = Path(delivery.external_id)  # {account}/{workout_id}.{ext} under the root
        assert (path.parent.parent, path.name) == (root, f"{workout.peloton_workout_id}.tcx")
        expected[path] = render_bundle(workout.bundle(), "tcx")
        attempts = await engine.attempts(delivery.id)
        assert attempts[-1].response_excerpt == f"wrote {len(expected[path])} bytes"
    # The files and nothing else: no temporary file is left by the failed or good attempts.
    assert {path: facts.data for path, facts in files.items()} == expected
    assert {facts.mode for facts in files.values()} == {0o644}

    # Sending again (a replay, or a retry after a crash past the write) changes nothing.
    engine.clock.advance(minutes=5)
    async with engine.runtime.sessions() as session, session.begin():
        queued = await deliveries_service.replay(
            session,
            destination.id,
            start=engine.clock.now - timedelta(days=3650),
            end=engine.clock.now,
            now=engine.clock.now,
        )
    assert queued == 2
    await engine.run()
    assert [d.state for d in await engine.deliveries()] == [DeliveryState.SUCCEEDED] * 2
    excerpts = [a.response_excerpt for a in (await engine.attempts())[-2:]]
    assert excerpts == ["already up to date"] * 2
    assert files_under(root) == files  # same bytes, same inodes, not even touched


# --- security ---------------------------------------------------------------------------------


async def test_the_ssrf_guard_refuses_localhost(
    tmp_path: Path, database_url: str, secret: str
) -> None:
    async with open_engine(tmp_path, database_url, webhook_allow_private=False) as engine:
        receiver = await engine.receiver(secret)
        await engine.webhook(receiver.url(host="localhost"), secret)
        await engine.link_and_poll()
        await engine.run()
        deliveries = await engine.deliveries()
        assert [(d.state, d.attempts) for d in deliveries] == [(DeliveryState.FAILED, 1)] * 2
        for delivery in deliveries:
            assert delivery.last_error is not None
            assert delivery.last_error.startswith("localhost resolves to ")
            assert "a loopback address" in delivery.last_error
            assert "PELOSYNC_WEBHOOK_ALLOW_PRIVATE" in delivery.last_error
        assert {a.error_class for a in await engine.attempts()} == {"UnsafeDestination"}
        assert receiver.requests == []


async def test_no_secret_reaches_attempts_excerpts_or_logs(
    engine: Engine, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    original_refresh = engine.refresh_token()
    # A debug receiver echoing everything it knows, the secret included, on error and success.
    echo = f"bad signature? your secret is {secret} ({secret.removeprefix('whsec_')})".encode()
    receiver = await engine.receiver(secret, Answer(status=200, body=echo))
    receiver.answers = [Answer(status=500, body=echo)]
    destination = await engine.webhook(receiver.url(), secret, concurrency=1)
    with structlog.testing.capture_logs() as logs:
        account = await engine.link_and_poll()
        await walk(engine)
    async with engine.runtime.sessions() as session:
        stored_account = await session.get(Account, account.id)
        assert stored_account is not None
        tokens = decrypt_tokens(engine.runtime.secrets, stored_account.tokens_encrypted)
        attempts = (await session.execute(select(DeliveryAttempt))).scalars().all()
        deliveries = (await session.execute(select(Delivery))).scalars().all()
    assert tokens is not None
    secrets = {
        secret,
        secret.removeprefix("whsec_"),
        original_refresh,
        tokens.refresh_token,
        tokens.access_token,
    } - {None}
    assert [a.outcome for a in attempts] == ["retry", "succeeded", "succeeded"]
    assert "[redacted]" in (attempts[0].response_excerpt or "")
    stored = await engine.destination(destination.id)
    texts = [
        *(repr(vars(a)) for a in attempts),
        *(repr(vars(d)) for d in deliveries),
        repr({**vars(stored), "secrets_encrypted": None}),
        *(repr(event) for event in logs),
        *(record.getMessage() for record in caplog.records),
        *(repr(record.args) for record in caplog.records),
        *(r.body.decode() for r in receiver.requests),  # what left the building
        *(repr(r.headers) for r in receiver.requests),
    ]
    assert any("webhook.answered" in t for t in texts)  # the logs were captured
    leaks = [(s[:12], t[:200]) for s in secrets for t in texts if s and s in t]
    assert leaks == []
