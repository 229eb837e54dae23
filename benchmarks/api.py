"""Admin API list latency: workouts and deliveries, filtered and paginated, under load.

Fills a scratch PostgreSQL database with ``--workouts`` workouts (100,000) over 10 accounts
and 4 deliveries each (400,000; mostly succeeded, some failed or pending), serves the API with
uvicorn in another process, and runs ``--clients`` (50) concurrent keep-alive clients on
loopback for ``--seconds``, each sending list requests in turn: newest first, by account, by
discipline, by date range, by status, the next page through a cursor; deliveries by state, by
destination, both, by workout, the next page. Prints p50/p99 latency per request kind and per
list, and the throughput. Target: p99 under 50 ms.

    python -m benchmarks.api [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
        [--workouts 100000] [--clients 50] [--seconds 15] [--workers 1] [--rate 25 50 100]
        [--no-search] [--reference]

It runs three ways:

* closed loop: every client sends its next request as soon as it has the answer. With 50
  clients, latency is then 50 / throughput whatever the server does (Little's law): this
  measures throughput, and p99 < 50 ms there would need some 2,000 requests a second;
* paced at each ``--rate`` (first pages a second over all clients, each client sending at
  random, Poisson, times; the next pages some clients then fetch add about a third): the
  latency a realistic load sees;
* with ``--reference``, the closed loop against ``benchmarks/api_reference.py`` first (the
  same SQL served by uvicorn and asyncpg alone, no framework): the floor this machine allows;
* searching (unless ``--no-search``) for the highest paced rate whose p99 is still under
  50 ms for both lists: five runs bisecting between 0 and the closed loop's throughput (on a
  machine shared with other work, p99 is noisy: run it more than once).

Each run prints the CPU time per request of the server process(es), of the database's
PostgreSQL backends (those alive at the start and the end of the run: a server that opens and
closes connections as it goes is undercounted) and of the clients (this process), so the
machine's whole CPU per request is known: with all three on the same 2 CPUs, 2,000 ms over
that total is the most the machine could serve.

The clients are a minimal HTTP/1.1 loop (no client library) so that they take as little of
the machine's CPU from the server as possible. PostgreSQL comes from ``--postgres`` or
``PELOSYNC_TEST_DATABASE_URL``; the scratch database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import secrets
import socket
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg

from benchmarks import api_reference
from service.auth.service import generate_key, hash_key
from service.db import create_engine
from service.migrate import upgrade

SECRET_KEY = "Yk2zWQ6mJ6cLJx8V8b0p3xwq9G6gQ0p3o0yHk2Qm3Uo="
ACCOUNTS = 10
DESTINATIONS = (("webhook", "fit"), ("webhook", "tcx"), ("directory", "fit"), ("strava", "fit"))
DISCIPLINES = ("cycling", "cycling", "cycling", "running", "strength", "yoga", "walking")
START = datetime(2022, 1, 1, tzinfo=UTC)


async def fill(dsn: str, workouts: int) -> str:
    """Rows straight through COPY; returns an admin API key."""
    conn = await asyncpg.connect(dsn)
    try:
        now = datetime.now(UTC)
        await conn.executemany(
            "INSERT INTO accounts (label, peloton_user_id, auth_method, paused, status, "
            "next_poll_at, consecutive_failures, sync_since, backfill_complete, "
            "pending_workout_ids, created_at, updated_at) VALUES "
            "($1, $2, 'token', false, 'active', $3, 0, $4, true, '[]', $3, $3)",
            [(f"rider {i}", f"user-{i}", now + timedelta(days=1), START) for i in range(ACCOUNTS)],
        )
        await conn.executemany(
            "INSERT INTO destinations (name, kind, config, formats, enabled, concurrency, "
            "created_at, updated_at) VALUES ($1, $2, '{}', $3, true, 4, $4, $4)",
            [(f"{k} {f}", k, json.dumps([f]), now) for k, f in DESTINATIONS],
        )
        account_ids = [r[0] for r in await conn.fetch("SELECT id FROM accounts ORDER BY id")]
        destination_ids = [
            r[0] for r in await conn.fetch("SELECT id FROM destinations ORDER BY id")
        ]
        rng = random.Random(7)
        span = (now - START).total_seconds()
        rows = []
        for i in range(workouts):
            started = START + timedelta(seconds=span * i / workouts + rng.random() * 60)
            discipline = DISCIPLINES[i % len(DISCIPLINES)]
            rows.append(
                (
                    account_ids[i % ACCOUNTS], f"w{i:08d}", discipline, f"{discipline} class {i}",
                    "Instructor", started, started + timedelta(minutes=30), "COMPLETE", "UTC",
                    False, False, 1800.0, 15000.0, 400.0, 140, 170, 180.0, 324000.0,
                    "{}", "{}", started, started,
                )
            )  # fmt: skip
        await conn.copy_records_to_table(
            "workouts",
            records=rows,
            columns=[
                "account_id", "peloton_workout_id", "discipline", "title", "instructor",
                "started_at", "ended_at", "peloton_status", "timezone", "is_outdoor", "has_gps",
                "duration_s", "distance_m", "calories_kcal", "avg_heart_rate", "max_heart_rate",
                "avg_power", "total_work_j", "raw_workout", "raw_performance_graph",
                "fetched_at", "created_at",
            ],
        )  # fmt: skip
        workout_rows = await conn.fetch("SELECT id, started_at FROM workouts ORDER BY id")
        deliveries = []
        for workout_id, started in workout_rows:
            for destination_id, (_kind, fmt) in zip(destination_ids, DESTINATIONS, strict=True):
                roll = rng.random()
                state = "succeeded" if roll < 0.9 else "failed" if roll < 0.97 else "pending"
                deliveries.append(
                    (
                        workout_id, destination_id, fmt, "msg_" + secrets.token_hex(12), state,
                        1, None if state != "pending" else started, 200 if state == "succeeded"
                        else 500, started if state == "succeeded" else None, started, started,
                    )
                )  # fmt: skip
        await conn.copy_records_to_table(
            "deliveries",
            records=deliveries,
            columns=[
                "workout_id", "destination_id", "format", "message_id", "state", "attempts",
                "next_attempt_at", "last_status_code", "delivered_at", "created_at", "updated_at",
            ],
        )  # fmt: skip
        key = generate_key()
        await conn.execute(
            "INSERT INTO api_keys (name, role, prefix, key_hash, created_at) "
            "VALUES ('bench', 'read_only', $1, $2, $3)",
            key[:12],
            hash_key(key),
            now,
        )
        await conn.execute("ANALYZE")
        return key
    finally:
        await conn.close()


def _serve(sock: socket.socket, url: str, data_dir: str) -> None:
    import sys

    import uvicorn

    from service.app import create_app
    from service.config import Environment, Settings
    from service.logging import configure_logging

    # JSON access logs at INFO as in production, written to /dev/null (their cost counts).
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    configure_logging("INFO", "json")
    settings = Settings(
        _env_file=None,
        env=Environment.TESTING,
        database_url=url,
        secret_key=SECRET_KEY,
        data_dir=Path(data_dir),
        convert_workers=0,
    )
    app = create_app(settings, scheduler=False)
    config = uvicorn.Config(app, log_config=None, access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


class Client:
    """One keep-alive HTTP/1.1 connection; ``get`` returns (status, body)."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.auth = f"Authorization: Bearer {key}\r\n".encode()

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def get(self, target: str) -> tuple[int, bytes]:
        self.writer.write(
            f"GET {target} HTTP/1.1\r\nHost: bench\r\n".encode() + self.auth + b"\r\n"
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


Query = dict[str, Any]


def request_kinds(
    account_ids: list[int], destination_ids: list[int], workout_ids: list[int]
) -> list[tuple[str, str, Any]]:
    """(name, list, query maker) for each kind of request."""
    rng = random.Random(1)

    def window() -> Query:
        day = START + timedelta(days=rng.randrange(0, 1400))
        return {
            "started_from": day.isoformat(),
            "started_before": (day + timedelta(days=30)).isoformat(),
        }

    def account() -> Query:
        return {"account_id": rng.choice(account_ids)}

    def destination() -> Query:
        return {"destination_id": rng.choice(destination_ids)}

    return [
        ("workouts newest", "workouts", dict),
        ("workouts by account", "workouts", account),
        ("workouts by discipline", "workouts", lambda: {"discipline": rng.choice(DISCIPLINES)}),
        ("workouts by date range", "workouts", window),
        ("workouts account+range", "workouts", lambda: {**window(), **account()}),
        ("workouts failed", "workouts", lambda: {"status": "failed"}),
        ("deliveries newest", "deliveries", dict),
        ("deliveries failed", "deliveries", lambda: {"state": "failed"}),
        ("deliveries by destination", "deliveries", destination),
        ("deliveries dest+pending", "deliveries", lambda: {**destination(), "state": "pending"}),
        ("deliveries by workout", "deliveries", lambda: {"workout_id": rng.choice(workout_ids)}),
    ]


CpuSampler = Callable[[], Awaitable[dict[str, dict[int, float]]]]


async def load(
    port: int,
    key: str,
    clients: int,
    seconds: float,
    ids: tuple[list[int], list[int], list[int]],
    rate: float | None = None,
    cpu: CpuSampler | None = None,
) -> tuple[dict[str, list[float]], int, float, dict[str, float]]:
    """Each client sends its next request as soon as it has the answer (``rate`` None), or
    paced so that all together send ``rate`` first pages a second at random (Poisson) times
    (a late one goes at once).
    Returns latencies, errors, seconds, and the CPU seconds of each part while measuring."""
    kinds = request_kinds(*ids)
    rng = random.Random(3)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors = 0
    stop_at = 0.0
    measuring = False

    async def run(index: int) -> None:
        nonlocal errors
        client = Client(port, key)
        await client.connect()

        async def fetch(target: str) -> tuple[int, bytes, float]:
            t0 = time.perf_counter()
            for _attempt in range(2):
                try:
                    status, body = await client.get(target)
                    return status, body, time.perf_counter() - t0
                except (ConnectionError, asyncio.IncompleteReadError):
                    # Closed by the server: idle past its keep-alive timeout (5 s) at low
                    # rates. Like an HTTP client, a new connection and the request again
                    # (its time counts); a second failure is an error.
                    client.close()
                    await client.connect()
            return 0, b"", 0.0

        try:
            turn = index
            # Paced: each client a Poisson process (independent users), all together ``rate``
            # first pages a second. (Fixed periods would repeat the same collisions every
            # period, so a run's tail would depend on how its phases happened to fall.)
            pace = rng.expovariate if rate else None
            per_client = rate / clients if rate else 0.0
            next_at = time.perf_counter() + (pace(per_client) if pace else 0.0)
            # (Not past the end either: a request due after it is not sent.)
            while time.perf_counter() < stop_at and (not pace or next_at < stop_at):
                if pace:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += pace(per_client)
                name, resource, query = kinds[turn % len(kinds)]
                turn += 1
                params = {"limit": 50, **query()}
                status, body, elapsed = await fetch(f"/v1/{resource}?{urlencode(params)}")
                if status != 200:
                    errors += 1
                    continue
                if measuring:
                    latencies[name].append(elapsed)
                cursor = json.loads(body)["next_cursor"] if turn % 3 == 0 else None
                if cursor:  # and the next page, as a client scrolling would
                    status, _, elapsed = await fetch(
                        f"/v1/{resource}?{urlencode({**params, 'cursor': cursor})}"
                    )
                    if status != 200:
                        errors += 1
                    elif measuring:
                        latencies[f"{resource} next page"].append(elapsed)
        finally:
            client.close()

    stop_at = time.perf_counter() + 3  # warm up: connections, caches, JIT-less Python paths
    await asyncio.gather(*(run(i) for i in range(clients)))
    measuring = True
    before = await cpu() if cpu else {}
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(run(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    after = await cpu() if cpu else {}
    used = {
        part: sum(t - before.get(part, {}).get(pid, 0.0) for pid, t in times.items())
        for part, times in after.items()
    }
    return latencies, errors, elapsed, used


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc); 0 if it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def cpu_sampler(servers: tuple[int, ...], conn: asyncpg.Connection) -> CpuSampler:
    """CPU seconds so far of the servers, of the database's PostgreSQL backends (those that
    exist when sampled; the server's pool is warm by then) and of this process."""

    async def sample() -> dict[str, dict[int, float]]:
        backends = await conn.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {
            "server": {pid: cpu_seconds(pid) for pid in servers},
            "postgres": {r["pid"]: cpu_seconds(r["pid"]) for r in backends},
            "clients": {os.getpid(): time.process_time()},
        }

    return sample


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def p99_ms(latencies: dict[str, list[float]]) -> float:
    """The worse of the two lists' p99."""
    return max(
        _ms([v for k, vs in latencies.items() if k.startswith(resource) for v in vs], 0.99)
        for resource in ("workouts", "deliveries")
    )


def report(
    latencies: dict[str, list[float]], errors: int, elapsed: float, cpu: dict[str, float]
) -> None:
    total = sum(len(v) for v in latencies.values())
    print(f"\n{'request':28} {'n':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for name in sorted(latencies):
        values = latencies[name]
        print(f"{name:28} {len(values):7d} {_ms(values, 0.5):8.1f} {_ms(values, 0.99):8.1f}")
    for resource in ("workouts", "deliveries"):
        values = [v for k, vs in latencies.items() if k.startswith(resource) for v in vs]
        print(
            f"{'ALL ' + resource:28} {len(values):7d} {_ms(values, 0.5):8.1f} "
            f"{_ms(values, 0.99):8.1f}   target p99 < 50 ms: "
            f"{'met' if _ms(values, 0.99) < 50 else 'NOT met'}"
        )
    print(f"\n{total} requests in {elapsed:.1f} s: {total / elapsed:.0f} req/s; {errors} errors")
    mean = statistics.fmean(v for vs in latencies.values() for v in vs)
    print(f"in flight on average (Little's law): {mean * total / elapsed:.1f}")
    per = {part: seconds / total * 1000 for part, seconds in cpu.items()}
    machine = sum(per.values())
    print(
        "CPU per request: "
        + ", ".join(f"{part} {ms:.2f} ms" for part, ms in per.items())
        + f"; {machine:.2f} ms in all"
    )
    print(
        f"so the server alone could do {1000 / per['server']:.0f} req/s per core, and the "
        f"machine ({os.cpu_count()} CPUs shared by all three) at most "
        f"{1000 * (os.cpu_count() or 1) / machine:.0f} req/s; load average "
        f"{os.getloadavg()[0]:.1f}"
    )


async def search(
    run: Callable[[float], Awaitable[tuple[dict[str, list[float]], int, float, dict[str, float]]]],
    ceiling: float,
    steps: int = 5,
) -> None:
    """The highest paced rate whose p99 is under 50 ms for both lists: bisection between 0 and
    ``ceiling`` (the closed loop's throughput, which no paced rate can beat)."""
    print(f"\n=== searching the highest rate with p99 < 50 ms, in {steps} runs")
    low, high = 0.0, ceiling
    best: tuple[float, float, float, dict[str, float], int] | None = None
    for _ in range(steps):
        rate = (low + high) / 2
        latencies, errors, elapsed, cpu = await run(rate)
        total = sum(len(v) for v in latencies.values())
        p99, served = p99_ms(latencies), total / elapsed
        print(f"paced at {rate:5.0f} first pages/s: {served:5.0f} req/s served, p99 {p99:6.1f} ms")
        if p99 < 50 and not errors:
            best, low = (rate, served, p99, cpu, total), rate
        else:
            high = rate
    if best is None:
        print(f"p99 stayed over 50 ms down to {high:.0f} first pages/s")
        return
    rate, served, p99, cpu, total = best
    per = ", ".join(f"{part} {seconds / total * 1000:.2f} ms" for part, seconds in cpu.items())
    print(
        f"p99 < 50 ms up to about {served:.0f} req/s (paced at {rate:.0f} first pages/s, "
        f"p99 {p99:.1f} ms; at {high:.0f} it was not); CPU per request there: {per}"
    )


async def main_async(args: argparse.Namespace) -> None:
    dsn = (args.postgres or os.environ.get("PELOSYNC_TEST_DATABASE_URL", "")).replace(
        "postgresql+asyncpg://", "postgresql://", 1
    )
    if not dsn:
        raise SystemExit("needs PostgreSQL: --postgres URL or PELOSYNC_TEST_DATABASE_URL")
    name = f"pelosync_bench_api_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db_dsn = dsn.rsplit("/", 1)[0] + "/" + name
    url = db_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    servers: list[Any] = []  # spawn-context processes
    try:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        t0 = time.perf_counter()
        key = await fill(db_dsn, args.workouts)
        conn = await asyncpg.connect(db_dsn)
        ids = (
            [r[0] for r in await conn.fetch("SELECT id FROM accounts")],
            [r[0] for r in await conn.fetch("SELECT id FROM destinations")],
            [r[0] for r in await conn.fetch("SELECT id FROM workouts TABLESAMPLE SYSTEM (5)")],
        )
        await conn.close()
        print(f"filled the database in {time.perf_counter() - t0:.1f} s")
        with tempfile.TemporaryDirectory() as data_dir:
            servers, port = await start_servers(_serve, (url, data_dir), args.workers, key)
            print(
                f"{args.clients} clients, {args.seconds:.0f} s per run, {args.workers} server "
                f"process(es), {os.cpu_count()} CPUs shared by clients, server and PostgreSQL"
            )
            pids = tuple(p.pid for p in servers if p.pid is not None)
            sampling = await asyncpg.connect(db_dsn)
            sampler = cpu_sampler(pids, sampling)

            async def run(rate: float | None) -> Any:
                return await load(port, key, args.clients, args.seconds, ids, rate, sampler)

            try:
                closed = 0.0
                if args.reference:
                    await reference(args, db_dsn, key, ids, port)
                for rate in [None, *args.rate]:
                    what = (
                        "as fast as answers come (closed loop)"
                        if rate is None
                        else f"paced at {rate:g} first pages/s"
                    )
                    print(f"\n=== {args.clients} concurrent clients, {what}")
                    result = await run(rate)
                    report(*result)
                    if rate is None:
                        closed = sum(len(v) for v in result[0].values()) / result[2]
                if args.search:
                    await search(run, closed)
            finally:
                await sampling.close()
    finally:
        stop_servers(servers)
        admin = await asyncpg.connect(dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def start_servers(
    target: Callable[..., None], extra: tuple[Any, ...], workers: int, key: str
) -> tuple[list[Any], int]:
    """``workers`` processes running ``target(sock, *extra)`` to serve on one listening socket;
    returns them and its port once it answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    servers = []
    for _ in range(workers):
        process = context.Process(target=target, args=(sock, *extra), daemon=True)
        process.start()
        servers.append(process)
    # (The socket stays open here: spawned children get their copy from this process.)
    for _ in range(600):
        try:
            probe = Client(port, key)
            await probe.connect()
            status, _ = await probe.get("/healthz")
            probe.close()
            if status == 200:
                break
        except OSError:
            await asyncio.sleep(0.1)
    return servers, port


def stop_servers(servers: list[Any]) -> None:
    for process in servers:
        process.terminate()
        process.join(10)


async def same_pages(
    service_port: int, port: int, key: str, ids: tuple[list[int], list[int], list[int]]
) -> None:
    """Each kind of request (a first page and the next) answered with the same items, fields
    and cursor by the service and by the reference: the floor does the service's work."""
    service, other = Client(service_port, key), Client(port, key)
    await service.connect()
    await other.connect()
    try:
        for _name, resource, query in request_kinds(*ids):
            params = {"limit": 50, **query()}
            for _page in range(2):
                target = f"/v1/{resource}?{urlencode(params)}"
                (status, mine), (status_other, theirs) = (
                    await service.get(target),
                    await other.get(target),
                )
                expected, got = json.loads(mine), json.loads(theirs)
                shown = [
                    ([item["id"] for item in page["items"]], page["next_cursor"])
                    for page in (expected, got)
                ]
                fields = {tuple(item) for page in (expected, got) for item in page["items"]}
                if status != 200 or status_other != 200 or shown[0] != shown[1] or len(fields) > 1:
                    raise SystemExit(f"the reference answers {target} otherwise than the service")
                if not got["next_cursor"]:
                    break
                params["cursor"] = got["next_cursor"]
    finally:
        service.close()
        other.close()


async def reference(
    args: argparse.Namespace,
    db_dsn: str,
    key: str,
    ids: tuple[list[int], list[int], list[int]],
    service_port: int,
) -> None:
    """The closed loop against ``benchmarks/api_reference.py`` (uvicorn and asyncpg alone) in
    both its modes, with as many processes: what this machine allows at all."""
    for mode in api_reference.MODES:
        servers, port = await start_servers(
            api_reference.serve, (db_dsn, hash_key(key), mode), args.workers, key
        )
        try:
            await same_pages(service_port, port, key, ids)
            pids = tuple(p.pid for p in servers if p.pid is not None)
            sampling = await asyncpg.connect(db_dsn)
            try:
                print(
                    f"\n=== REFERENCE ({mode}: bare ASGI app on asyncpg, the service's SQL, no "
                    f"framework): {args.clients} concurrent clients, closed loop"
                )
                result = await load(
                    port, key, args.clients, args.seconds, ids, None, cpu_sampler(pids, sampling)
                )
                report(*result)
            finally:
                await sampling.close()
        finally:
            stop_servers(servers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres")
    parser.add_argument("--workouts", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, nargs="*", default=[25.0, 50.0, 100.0])
    parser.add_argument("--no-search", dest="search", action="store_false")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="first run the closed loop against a bare uvicorn + asyncpg server (the floor)",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
