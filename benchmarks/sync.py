"""Sync engine throughput: 500 accounts with 2 new workouts each, 100 ms per Peloton request.

The sandbox Peloton runs as its own process (``pelosync sandbox``), so this process's peak RSS
is the sync engine's alone. Each configuration runs in a fresh child process (a fresh
database, a fresh sandbox, its own peak RSS):

1. untimed set-up, without latency: link every account (refresh token), then a first sync
   stores each user's one old workout (the backfill) so the timed sync is incremental;
2. every user gets 2 new workouts, the sandbox gets its latency, its request log is reset
   and every account is made due;
3. timed: one :class:`PollJob` ticks every ``tick_seconds`` (the setting, 5 s by default)
   until every new workout is stored.

Printed for each configuration: wall time; the requests the sandbox logged; the latency bound
``requests x latency / peloton_concurrency`` (what the request budget alone allows) and the
wall time's ratio to it (target: under 2); peak RSS of this process (target: under 300 MB),
of the conversion worker (``convert_workers`` >= 1) and of the sandbox. Then the CPU each
process used during the timed sync, the mean requests in flight, polls running and event-loop
lag, and the bound again at the pace the sandbox actually answered (on a busy machine it
answers slower than its configured latency: that part of the wall time is not the engine's).

    python -m benchmarks.sync [--accounts 500] [--new 2] [--latency-ms 100]
        [--configs default 64/32] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

The request budget (``PELOSYNC_PELOTON_MAX_RPS``, 2 per second by default) is raised to
``--max-rps`` (default 1000) so that the engine, not the budget's pacing, is measured; at the
default rate 500 accounts' ~3,800 requests take ~32 minutes by design (``benchmarks.freshness``
measures what that pacing means for riders). Pass ``--max-rps 2`` to see it.

A configuration is ``default`` (the settings' defaults) or ``SYNC/PELOTON`` concurrencies.
``--postgres`` takes a server URL: each run creates (and drops) a database of its own there;
the default is a SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import func, select, update

from benchmarks.scratch import migrated_database
from service.accounts import linking as accounts
from service.accounts.jobs import PollJob
from service.accounts.models import Account
from service.config import Settings
from service.db import utcnow
from service.logging import configure_logging
from service.runtime import Runtime, open_runtime
from service.workouts.models import Workout

DEFAULTS = Settings.model_construct()
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
SEED = 7


@dataclass(frozen=True)
class Config:
    sync: int
    peloton: int

    @classmethod
    def parse(cls, text: str) -> Config:
        if text == "default":
            return cls(DEFAULTS.sync_concurrency, DEFAULTS.peloton_concurrency)
        sync, _, peloton = text.partition("/")
        return cls(int(sync), int(peloton))

    def label(self) -> str:
        return f"{self.sync}/{self.peloton}"


# --- the sandbox, in a process of its own -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float | None:
    """A live process's CPU time so far (user + system), seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    """A live process's peak resident set (VmHWM), in MB; None where /proc is missing."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextlib.contextmanager
def sandbox_process(users: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    command = [sys.executable, "-c", "from service.cli import main; main()", "sandbox"]
    command += ["--port", str(port), "--users", str(users), "--workouts", "1"]
    command += ["--seed", str(SEED)]
    # Its access log would only cost CPU: the request counters are read over the admin API.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_for_sandbox(admin: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the sandbox exited during start-up")
        with contextlib.suppress(httpx.HTTPError):
            if (await admin.get("/_sandbox/")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise SystemExit("the sandbox did not start within 60 s")


# --- the database -----------------------------------------------------------------------------


async def link_all(rt: Runtime, users: list[dict[str, Any]]) -> None:
    gate = asyncio.Semaphore(16)

    async def link(user: dict[str, Any]) -> None:
        request = accounts.LinkRequest(
            refresh_token=user["refresh_tokens"][0]["token"], sync_since=LONG_AGO
        )
        async with gate, rt.sessions() as session, session.begin():
            await accounts.link(rt, session, request)

    await asyncio.gather(*(link(user) for user in users))


async def stored_workouts(rt: Runtime) -> int:
    async with rt.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Workout))).scalar_one())


@dataclass
class Usage:
    """Mean Peloton requests in flight and polls running, sampled every 50 ms."""

    samples: int = 0
    requests: float = 0
    polls: float = 0
    lag: float = 0  # how late the 50 ms sleep woke up: the event loop's backlog

    def add(self, rt: Runtime, job: PollJob, lag: float) -> None:
        self.samples += 1
        # The semaphore's free slots (a private attribute: this is a diagnostic only).
        self.requests += rt.settings.peloton_concurrency - rt.peloton_slots._value
        self.polls += len(job.running)
        self.lag += lag

    def __str__(self) -> str:
        n = max(self.samples, 1)
        return (
            f"{self.requests / n:.1f} requests in flight, {self.polls / n:.1f} polls running, "
            f"loop lag {self.lag / n * 1000:.0f} ms"
        )


async def sync_until(
    rt: Runtime, job: PollJob, workouts: int, tick: float, usage: Usage | None = None
) -> float:
    """Tick every ``tick`` seconds (as the scheduler does) until ``workouts`` are stored; the
    wall time, to the nearest 50 ms."""
    start = last_tick = time.perf_counter()
    await job.tick()
    while job.running or await stored_workouts(rt) < workouts:
        slept = time.perf_counter()
        await asyncio.sleep(0.05)
        if usage is not None:
            usage.add(rt, job, time.perf_counter() - slept - 0.05)
        if time.perf_counter() - last_tick >= tick:
            last_tick = time.perf_counter()
            await job.tick()
    return time.perf_counter() - start


# --- one configuration ------------------------------------------------------------------------


async def run_one(args: argparse.Namespace, config: Config) -> None:
    with tempfile.TemporaryDirectory(prefix="pelosync-bench-") as tmp:
        folder = Path(tmp)
        with sandbox_process(args.accounts) as (url, sandbox):
            async with (
                httpx.AsyncClient(base_url=url, timeout=30) as admin,
                migrated_database(args.postgres, folder) as db_url,
            ):
                await wait_for_sandbox(admin, sandbox)
                users = (await admin.get("/_sandbox/users")).json()
                settings = Settings(
                    data_dir=folder,
                    database_url=db_url,
                    secret_key=Fernet.generate_key().decode(),
                    peloton_api_url=url,
                    peloton_auth_url=url,
                    sync_concurrency=config.sync,
                    peloton_concurrency=config.peloton,
                    tick_seconds=args.tick or DEFAULTS.tick_seconds,
                    peloton_max_rps=args.max_rps,
                    log_level="WARNING",
                )
                async with open_runtime(settings) as rt:
                    await measure(args, config, rt, admin, users, sandbox.pid)


async def measure(
    args: argparse.Namespace,
    config: Config,
    rt: Runtime,
    admin: httpx.AsyncClient,
    users: list[dict[str, Any]],
    sandbox_pid: int,
) -> None:
    tick = rt.settings.tick_seconds
    started = time.perf_counter()
    await link_all(rt, users)
    job = PollJob(rt)
    await sync_until(rt, job, len(users), 0.05)  # the backfill: one old workout each
    setup_s = time.perf_counter() - started

    for user in users:
        response = await admin.post(
            f"/_sandbox/users/{user['user_id']}/workouts", json={"count": args.new}
        )
        response.raise_for_status()
    await admin.post("/_sandbox/reset", json={})  # clears the request log (and the latency)
    await admin.put("/_sandbox/latency", json={"ms": args.latency_ms})
    async with rt.sessions() as session, session.begin():
        await session.execute(update(Account).values(next_poll_at=utcnow()))

    children = [p.pid for p in multiprocessing.active_children() if p.pid]
    pids = [os.getpid(), sandbox_pid, *children]
    cpu_before = [cpu_seconds(pid) for pid in pids]
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    usage = Usage()
    wall = await sync_until(rt, job, len(users) * (1 + args.new), tick, usage)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    cpu = [_delta(cpu_seconds(pid), before) for pid, before in zip(pids, cpu_before, strict=True)]
    counters = (await admin.get("/_sandbox/counters")).json()
    log = (await admin.get("/_sandbox/requests", params={"limit": 100_000})).json()
    served_ms = sum(entry["duration_ms"] for entry in log) / max(len(log), 1)
    requests = int(counters["requests"])
    bound = requests * args.latency_ms / 1000 / config.peloton
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    converter = [peak_rss_mb(pid) for pid in children]
    sandbox = peak_rss_mb(sandbox_pid)
    print(
        f"{config.label():>9} {tick:>5g} {len(users):>8} {len(users) * args.new:>8} "
        f"{requests:>8} {wall:>8.1f} {bound:>8.1f} {wall / bound:>6.2f} "
        f"{own:>8.0f} {_mb(max(converter, default=None, key=lambda v: v or 0)):>9} "
        f"{_mb(sandbox):>8} {setup_s:>8.1f}",
        flush=True,
    )
    print(
        f"          CPU s during the sync: this process {_s(cpu[0])}, sandbox {_s(cpu[1])}, "
        f"converter {_s(sum(c or 0 for c in cpu[2:]) if cpu[2:] else None)}; mean {usage}",
        flush=True,
    )
    served = requests * served_ms / 1000 / config.peloton
    print(
        f"          the sandbox answered in {served_ms:.0f} ms on average: bound at that pace "
        f"{served:.1f} s, ratio {wall / served:.2f}",
        flush=True,
    )
    slow = [k for k, v in counters["by_status"].items() if not k.startswith("2")]
    if slow:
        print(f"          non-2xx answers: { {k: counters['by_status'][k] for k in slow} }")


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


HEADER = (
    f"{'sync/pel':>9} {'tick':>5} {'accounts':>8} {'new':>8} {'requests':>8} {'wall s':>8} "
    f"{'bound s':>8} {'ratio':>6} {'RSS MB':>8} {'conv MB':>9} {'sbx MB':>8} {'setup s':>8}"
)


# --- entry point ------------------------------------------------------------------------------


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--new", type=int, default=2, help="new workouts per account")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--configs", nargs="+", default=["default", "64/32"])
    parser.add_argument("--tick", type=float, default=None, help="tick seconds (default: 5)")
    parser.add_argument("--postgres", default=None, help="PostgreSQL server URL")
    parser.add_argument("--profile", default=None, help="cProfile the timed sync into FILE")
    parser.add_argument(
        "--max-rps", type=float, default=1000.0, help="the request budget (default: no pacing)"
    )
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.one is not None:
        configure_logging("WARNING")
        asyncio.run(run_one(args, Config.parse(args.one)))
        return
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"Sync: {args.accounts} accounts x {args.new} new workouts, {args.latency_ms:g} ms "
        f"per sandbox request, {backend}, request budget {args.max_rps:g}/s; one process, "
        "sandbox in another"
    )
    print(HEADER, flush=True)
    for config in args.configs:
        command = [sys.executable, "-m", "benchmarks.sync", *sys.argv[1:], "--one", config]
        if "--configs" in command:  # the child runs exactly one
            at = command.index("--configs")
            end = at + 1
            while end < len(command) and not command[end].startswith("--"):
                end += 1
            del command[at:end]
        subprocess.run(command, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


if __name__ == "__main__":
    cli()
