"""The operator's commands, run as real processes against a sandbox Peloton on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from tests.cli import clean_env, free_port, pelosync, start


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(
        tmp_path / "data",
        PELOSYNC_LOG_LEVEL="WARNING",
        PELOSYNC_CONVERT_WORKERS="0",
        PELOSYNC_BACKFILL_DAYS="3650",
    )


async def test_link_list_sync_pause_delete(base_env: dict[str, str]) -> None:
    state = SandboxState(SandboxConfig(seed=5, users=1, workouts=3, anchor=int(time.time())))
    async with run_sandbox(state) as url:
        env = dict(base_env, PELOSYNC_PELOTON_API_URL=url, PELOSYNC_PELOTON_AUTH_URL=url)
        info = state.describe_user(next(iter(state.accounts.values())))
        token = info["refresh_tokens"][0]["token"]

        code, out, err = await pelosync(env, "db", "check")
        assert code == 2
        assert "pelosync db upgrade" in err
        assert "Traceback" not in err
        code, out, err = await pelosync(env, "db", "upgrade")
        assert code == 0, err

        code, out, err = await pelosync(
            env, "account", "link", "--label", "Me", "--refresh-token", token
        )
        assert code == 0, err
        assert "linked account 1" in out
        code, out, err = await pelosync(
            env,
            "account",
            "link",
            "--refresh-token",
            state.describe_user(next(iter(state.accounts.values())))["refresh_tokens"][0]["token"],
        )
        assert code == 2
        assert "already linked" in err

        code, out, err = await pelosync(env, "account", "link")
        assert code == 2
        assert err.strip() == (
            "pelosync: error: give --refresh-token (recommended), --access-token, or "
            "--username (the password is then asked for)"
        )

        code, out, err = await pelosync(env, "sync", "--once", "--account", "1")
        assert code == 0, err
        assert "account 1: ok, 3 new" in out
        code, out, err = await pelosync(env, "sync", "--once", "--account", "99")
        assert code == 2  # not "nothing was due"
        assert err.strip() == "pelosync: error: account 99 not found"
        code, out, err = await pelosync(env, "account", "list")
        header, row = out.splitlines()
        assert header.split() == [
            "ID", "LABEL", "STATUS", "POLLING", "WORKOUTS", "NEXT", "POLL", "LAST", "ERROR"
        ]  # fmt: skip
        assert row.split()[:5] == ["1", "Me", "active", "polling", "3"]
        assert token not in out + err

        code, out, _ = await pelosync(env, "account", "pause", "1")
        assert code == 0
        code, out, _ = await pelosync(env, "account", "list")
        assert out.splitlines()[1].split()[:7] == [
            "1", "Me", "active", "paused", "3", "when", "resumed"
        ]  # fmt: skip
        code, out, err = await pelosync(env, "account", "pause", "99")
        assert code == 2
        assert "account 99 not found" in err
        code, out, err = await pelosync(env, "account", "update", "1", "--include-external")
        assert code == 0, err
        assert "account 1 delivers imported workouts fetched from now on" in out
        code, out, err = await pelosync(env, "account", "update", "1")
        assert code == 2
        assert "nothing to change" in err
        code, out, err = await pelosync(env, "account", "update", "99", "--exclude-external")
        assert code == 2
        assert "account 99 not found" in err
        # Peloton refuses the account's tokens: the next sync parks it, the one after says so.
        state.tokens.revoke_user(info["user_id"])
        code, out, err = await pelosync(env, "sync", "--once", "--account", "1")
        assert code == 0, err
        assert "account 1: needs_reauth" in out
        code, out, err = await pelosync(env, "sync", "--once", "--account", "1")
        assert code == 2
        assert "account 1 needs re-authentication (Peloton refused its credentials)" in err
        code, out, _ = await pelosync(env, "account", "list")
        assert out.splitlines()[1].split()[2:7] == [
            "needs_reauth",
            "paused",
            "3",
            "after",
            "reauth",
        ]
        code, out, err = await pelosync(env, "account", "delete", "99")
        assert code == 2  # said before asking, not after
        assert err.strip() == "pelosync: error: account 99 not found"
        code, out, err = await pelosync(env, "account", "delete", "1", stdin=b"n\n")
        assert code == 2  # answered no: kept
        assert "Delete account 1 (Me) with its 3 workouts and their deliveries?" in out
        assert "not deleted" in err
        code, out, err = await pelosync(env, "account", "delete", "1", "--yes")
        assert code == 0, err
        code, out, _ = await pelosync(env, "account", "list")
        assert "no accounts linked yet" in out


async def test_bad_refresh_token_is_refused_clearly(base_env: dict[str, str]) -> None:
    state = SandboxState(SandboxConfig(seed=6, users=1, workouts=1))
    async with run_sandbox(state) as url:
        env = dict(base_env, PELOSYNC_PELOTON_API_URL=url, PELOSYNC_PELOTON_AUTH_URL=url)
        assert (await pelosync(env, "db", "upgrade"))[0] == 0
        code, out, err = await pelosync(env, "account", "link", "--refresh-token", "v1.bogus")
        assert code == 2
        assert "Traceback" not in err
        assert err.strip().splitlines() == [
            "pelosync: error: token refresh was refused by Peloton "
            "(invalid_grant: Unknown or invalid refresh token.)"
        ]


async def test_serve_no_migrate_refuses_an_outdated_schema(base_env: dict[str, str]) -> None:
    code, out, err = await pelosync(base_env, "serve", "--no-migrate", "--port", "18999")
    assert code == 2
    assert "schema" in err
    assert "pelosync db upgrade" in err
    assert "Traceback" not in err


async def test_production_without_key_refuses_to_start(base_env: dict[str, str]) -> None:
    env = dict(base_env, PELOSYNC_ENV="production")
    env.pop("PELOSYNC_SECRET_KEY")
    code, _, err = await pelosync(env, "account", "list")
    assert code == 2
    assert "PELOSYNC_SECRET_KEY is required" in err


async def test_serve_workers_share_one_port_and_stop_cleanly(base_env: dict[str, str]) -> None:
    """``serve --workers 2``: migrations and the first key once, two replicas answering on one
    port, a request sent while the workers start waits for them, and SIGTERM stops them all
    with exit code 0."""
    port = free_port()
    env = dict(base_env, PELOSYNC_LOG_LEVEL="INFO", PELOSYNC_LOG_FORMAT="json")
    proc = await start(
        env, "serve", "--workers", "2", "--port", str(port), stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    lines: list[str] = []

    async def read_until(done: Callable[[], bool]) -> None:
        assert proc.stderr is not None
        while not done():
            line = (await proc.stderr.readline()).decode()
            assert line, "\n".join(lines)
            lines.append(line)

    def keys() -> list[str]:
        # Not a terminal: the key is in the data dir's file, and the log only says where.
        key_file = Path(env["PELOSYNC_DATA_DIR"]) / "first-admin-key.txt"
        assert not any("psk_" in line for line in lines), lines
        return [key_file.read_text().strip() for line in lines if str(key_file) in line]

    def started() -> list[dict[str, Any]]:
        return [json.loads(line) for line in lines if '"service.started"' in line]

    try:
        async with asyncio.timeout(90):
            await read_until(lambda: bool(keys()))  # the parent, before any worker starts
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                auth = {"Authorization": f"Bearer {keys()[0]}"}
                reading = asyncio.create_task(read_until(lambda: len(started()) == 2))
                try:
                    for _ in range(4):
                        answer = await client.get("/v1/workouts", headers=auth)
                        assert answer.status_code == 200 and answer.json()["items"] == []
                    await reading
                finally:
                    reading.cancel()
                assert len(keys()) == 1, lines  # created once, by the parent
                workers = {entry["worker"] for entry in started()}
                pids = {int(worker.split(":")[1]) for worker in workers}
                assert len(pids) == 2 and proc.pid not in pids
                assert (await client.get("/v1/workouts")).status_code == 401
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), timeout=60)
        await proc.wait()
    assert proc.returncode == 0, rest.decode()[-2000:]
    assert rest.decode().count('"service.stopped"') == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_serve_demo_is_one_process(base_env: dict[str, str]) -> None:
    code, _, err = await pelosync(base_env, "serve", "--demo", "--workers", "2")
    assert code == 2 and "--demo runs in one process" in err and "Traceback" not in err
