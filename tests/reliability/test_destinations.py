"""Destinations failing for a while: a webhook receiver that is down, a folder on a full or
read-only disk. Every delivery is retried on the schedule (walked through on the fake clock)
and succeeds once the fault is lifted; nothing is dropped, nothing is left half-written."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from service.destinations.kinds import directory_files
from service.destinations.kinds.webhook import WebhookConfig, generate_secret
from service.destinations.models import Destination
from tests.destinations.receiver import Receiver
from tests.reliability.conftest import Rig, summary


class PortReceiver(Receiver):
    """A receiver that can come back on the port it had (clients see the same URL)."""

    async def start_on(self, port: int) -> PortReceiver:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = port
        return self


async def catch_up(rig: Rig) -> None:
    """Move the clock to the latest pending retry and deliver everything then due."""
    pending = [d for d in await rig.deliveries() if d.state == "pending"]
    assert pending and all(d.next_attempt_at is not None for d in pending)
    latest = max(d.next_attempt_at for d in pending if d.next_attempt_at is not None)
    rig.clock.now = max(rig.clock.now, latest)
    await rig.job.run_until_idle()


async def test_a_webhook_receiver_down_then_back_gets_every_delivery(rig: Rig) -> None:
    secret = generate_secret()
    receiver = PortReceiver([secret])
    await receiver.start()
    port = receiver.port
    await receiver.close()  # nothing listens there now: connection refused
    config, secrets = WebhookConfig(url=receiver.url(), secret=secret).split()
    await rig.add(
        Destination(
            name="hook",
            kind="webhook",
            config=config,
            secrets_encrypted=rig.runtime.secrets.encrypt_json(secrets),
            formats=["json", "tcx"],
            concurrency=2,
            enabled=True,
        )
    )
    account = await rig.link()
    await rig.poll_until_done(account.id)
    deliveries = await rig.deliveries()
    assert len(deliveries) == 2 * len(rig.expected_ids())

    down_rounds = 3
    await rig.job.run_until_idle()
    for _ in range(down_rounds - 1):
        await catch_up(rig)
    attempts = await rig.attempts()
    assert len(attempts) == down_rounds * len(deliveries)
    assert {a.outcome for a in attempts} == {"retry"}
    assert all(a.error and "connect" in a.error.lower() for a in attempts), attempts[0].error
    assert {d.state for d in await rig.deliveries()} == {"pending"}

    await receiver.start_on(port)
    try:
        await catch_up(rig)
    finally:
        await receiver.close()
    final = await rig.deliveries()
    assert {d.state for d in final} == {"succeeded"}
    by_delivery: dict[int, list[str]] = {}
    for attempt in await rig.attempts():
        by_delivery.setdefault(attempt.delivery_id, []).append(attempt.outcome)
    assert by_delivery == {d.id: ["retry"] * down_rounds + ["succeeded"] for d in final}
    assert not receiver.unverified()
    # One request per delivery, carrying its own webhook id: nothing lost, nothing doubled.
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert sorted(ids) == sorted(d.message_id for d in final)
    summary(
        "webhook-receiver-down",
        faults=down_rounds * len(final),
        survived=len(final),
        lost=len(final) - len(ids),
    )


def _failing(code: int) -> Any:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("code", "target", "message"),
    [
        # A full disk shows when the data is flushed, after the temporary file exists.
        (errno.ENOSPC, "fsync", "disk full"),
        (errno.EDQUOT, "fsync", "disk quota exceeded"),
        # A read-only folder refuses the temporary file itself.
        (errno.EROFS, "temporary", "read-only file system"),
    ],
)
async def test_a_full_or_read_only_folder_retries_and_leaves_no_partial_files(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, target: str, message: str
) -> None:
    root = tmp_path / "export"
    await rig.add(
        Destination(
            name="folder",
            kind="directory",
            config={"root": str(root), "template": "{workout_id}.{ext}"},
            formats=["tcx", "fit"],
            concurrency=2,
            enabled=True,
        )
    )
    account = await rig.link()
    await rig.poll_until_done(account.id)
    deliveries = await rig.deliveries()
    with monkeypatch.context() as patch:
        if target == "fsync":
            patch.setattr("os.fsync", _failing(code))  # what the folder's writer calls
        else:
            patch.setattr(directory_files, "_create_temporary", _failing(code))
        await rig.job.run_until_idle()
        await catch_up(rig)
        leftovers = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
        assert leftovers == []  # no partial file, no temporary file
    failed = await rig.attempts()
    assert len(failed) == 2 * len(deliveries)
    assert {a.outcome for a in failed} == {"retry"}
    assert all(a.error and message in a.error for a in failed), failed[0].error

    await catch_up(rig)
    final = await rig.deliveries()
    assert {d.state for d in final} == {"succeeded"}
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert [p.name for p in files] == sorted(Path(d.external_id or "").name for d in final)
    assert all(p.stat().st_size > 0 for p in files)
    assert not list(root.rglob(".pelosync-*"))
    summary(
        f"folder-{errno.errorcode[code]}",
        faults=len(failed),
        survived=len(final),
        lost=len(final) - len(files),
    )
