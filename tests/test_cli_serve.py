"""``pelosync serve`` and the help texts as a user meets them: real processes, real ports."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.cli import PELOSYNC, clean_env, free_port, pelosync, start
from tests.journey.processes import read_json, running


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path / "data", PELOSYNC_CONVERT_WORKERS="0")


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_port_in_use_is_one_line_and_exit_2_before_migrations(
    env: dict[str, str], tmp_path: Path, workers: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await pelosync(env, "serve", "--port", str(port), "--workers", workers)
    assert code == 2, err
    assert err.splitlines() == [
        f"pelosync: error: cannot listen on 127.0.0.1:{port}: Address already in use (another "
        "pelosync may be running there; choose a port with --port or PELOSYNC_PORT)"
    ]
    assert out == ""
    assert not (tmp_path / "data" / "pelosync.db").exists()  # nothing migrated


async def _demo_start(env: dict[str, str], port: int) -> str:
    """Start ``serve --demo``, read its terminal output up to the dashboard line, stop it."""
    proc = await start(env, "serve", "--demo", "--port", str(port), stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):
            while not any("demo dashboard" in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, "".join(lines)
                lines.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0
    return "".join(lines)


async def test_a_restarted_demo_says_where_its_key_is(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    key_file = tmp_path / "data" / "first-admin-key.txt"
    first = await _demo_start(env, port)
    assert "psk_" not in first  # not a terminal: the key goes to a file, never to the log
    key = key_file.read_text().strip()
    assert key.startswith("psk_")
    assert f"sign in with the key in {key_file};" in first

    again = await _demo_start(env, port)
    assert "psk_" not in again  # the key is stored hashed: the file is where it is
    assert f"sign in with the key in {key_file};" in again

    key_file.unlink()  # stored somewhere safe, as the first start asked
    later = await _demo_start(env, port)
    assert (
        f"pelosync demo dashboard: http://127.0.0.1:{port}/ (sign in with the admin key given "
        "when this demo first started; lost it? make another with: pelosync apikey create "
        "--name dashboard;" in later
    )
    code, out, _ = await pelosync(env, "apikey", "create", "--name", "dashboard")
    assert code == 0 and out.startswith("psk_")


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["sync"],
        ["convert"],
        ["sandbox"],
        ["account", "list"],
        ["account", "link"],
        ["apikey", "create"],
        ["db", "upgrade"],
        ["secrets", "rotate"],
    ],
)
async def test_help_texts_read_cleanly(env: dict[str, str], command: list[str]) -> None:
    code, out, err = await pelosync(env, *command, "--help")
    assert code == 0, err
    assert "Usage: " in out
    for markup in ("``", ":func:", ":class:", "[default: True]", "[default: False]"):
        assert markup not in out, f"{markup!r} in `pelosync {' '.join(command)} --help`"


async def test_the_sandbox_stops_with_exit_0_on_sigterm(env: dict[str, str]) -> None:
    pipe = asyncio.subprocess.PIPE
    proc = await start(env, "sandbox", "--port", "0", "--users", "1", stdout=pipe, stderr=pipe)
    assert proc.stdout is not None and proc.stderr is not None
    first = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
    assert first.startswith(b"Peloton sandbox at http://127.0.0.1:")
    async with asyncio.timeout(60):
        line = b"-"
        while line and b"Started server process" not in line:  # signal handlers are set
            line = await proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0


def test_the_readme_sandbox_flow_syncs_with_the_default_backfill(tmp_path: Path) -> None:
    """`pelosync sandbox`, then `account link` and `sync --once` with default settings: the
    sandbox's history is recent enough for the default 30-day backfill."""
    with running(
        ["sandbox", "--port", "0", "--users", "1", "--workouts", "12", "--json"],
        clean_env(tmp_path / "sandbox"),
        stdout=True,
    ) as sandbox:
        described = read_json(sandbox)
        url, user = described["base_url"], described["users"][0]
        env = clean_env(
            tmp_path / "data", PELOSYNC_PELOTON_API_URL=url, PELOSYNC_PELOTON_AUTH_URL=url
        )
        for args in (
            ["db", "upgrade"],
            ["account", "link", "--refresh-token", user["refresh_tokens"][0]["token"]],
        ):
            done = subprocess.run([*PELOSYNC, *args], env=env, capture_output=True, timeout=120)
            assert done.returncode == 0, done.stderr
        synced = subprocess.run(
            [*PELOSYNC, "sync", "--once"], env=env, capture_output=True, text=True, timeout=300
        )
    assert synced.returncode == 0, synced.stderr
    new = int(synced.stdout.split("ok, ")[1].split(" new")[0])
    assert 0 < new <= 12
