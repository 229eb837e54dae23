"""Delivery engine throughput: pending webhook deliveries through ``DeliveryJob``.

Inserts ``--count`` workouts and pending deliveries directly (a few small sandbox bundles
reused across rows), points one webhook destination at a loopback receiver that answers 200 at
once (raw asyncio, in its own process), and times ``DeliveryJob.run_until_idle`` until every
delivery has succeeded: conversion, signing, one HTTP request, the attempt row and the
bookkeeping for each. The reference is a bare httpx loop posting the same bodies at the same
concurrency with keep-alive, on httpx's own transport (httpcore). Target: the engine at least
half that loop's rate. The engine's client sends through aiohttp underneath httpx's API
(``service/webhook_http.py``), so the bare loop also runs on that
transport, and the engine's rate is given against both.

    python -m benchmarks.deliver [--count 5000] [--concurrency 16 32] [--formats json tcx]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--profile]
        [--databases sqlite postgres postgres-generic]

PostgreSQL runs when ``--postgres`` (or ``PELOSYNC_TEST_DATABASE_URL``) names a server: a
scratch database is created there and dropped afterwards. ``postgres-generic`` runs PostgreSQL
with its fast paths off (``service/dialect.py``: the claims' SKIP LOCKED, the one-statement
results, autocommit), to measure what they buy.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import hashlib
import io
import json
import multiprocessing
import os
import pstats
import re
import statistics
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import structlog
from sqlalchemy import func, insert, select

from benchmarks.scratch import migrated_database
from service.accounts.models import Account
from service.commands.common import event_loop_factory
from service.config import Environment, Settings
from service.convert.pool import render_bundle, summarize_bundle
from service.deliveries.jobs import DeliveryJob
from service.deliveries.models import Delivery, DeliveryState
from service.deliveries.repository import new_message_id
from service.destinations.kinds.webhook import WebhookConfig, generate_secret
from service.destinations.models import Destination
from service.dialect import use_generic_paths
from service.logging import configure_logging
from service.peloton.sandbox import generate_bundle
from service.runtime import open_runtime
from service.webhook_http import build_client
from service.workouts.models import Workout

SECRET_KEY = "Yk2zWQ6mJ6cLJx8V8b0p3xwq9G6gQ0p3o0yHk2Qm3Uo="
BUNDLES = 8

# --- a receiver that answers 200 at once ----------------------------------------------------

_LENGTH = re.compile(rb"content-length:\s*(\d+)")
_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
_OK_CLOSE = _OK.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)


class _FastHTTP(asyncio.Protocol):
    """Just enough HTTP/1.1: read each request by its content-length, answer 200."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            match = _LENGTH.search(head)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            if b"connection: close" in head:
                self.transport.write(_OK_CLOSE)
                self.transport.close()
                return
            self.transport.write(_OK)


def _serve(port: Any, ready: Any) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FastHTTP, "127.0.0.1", 0, backlog=1024)
        port.value = server.sockets[0].getsockname()[1]
        ready.set()
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        asyncio.run(serve())


class ReceiverProcess:
    """The fast receiver in a process of its own, so it does not share our event loop."""

    def __enter__(self) -> str:
        context = multiprocessing.get_context("spawn")
        self._port = context.Value("i", 0)
        ready = context.Event()
        self._process = context.Process(target=_serve, args=(self._port, ready), daemon=True)
        self._process.start()
        if not ready.wait(30):
            raise RuntimeError("the receiver did not start")
        return f"http://127.0.0.1:{self._port.value}/hook"

    def __exit__(self, *_exc: object) -> None:
        self._process.terminate()
        self._process.join(10)


# --- databases ------------------------------------------------------------------------------


def make_bundles() -> list[dict[str, Any]]:
    return [
        generate_bundle(seed, "cycling_class", every_n=5, duration=600) for seed in range(BUNDLES)
    ]


def workout_row(bundle: dict[str, Any]) -> dict[str, Any]:
    s = summarize_bundle(bundle)
    return {
        "peloton_ride_id": s.ride_id,
        "discipline": s.discipline,
        "title": s.title,
        "instructor": s.instructor,
        "started_at": s.start,
        "ended_at": s.end,
        "peloton_status": "COMPLETE",
        "timezone": s.timezone,
        "is_outdoor": s.is_outdoor,
        "has_gps": s.has_gps,
        "duration_s": s.duration_s,
        "distance_m": s.distance_m,
        "calories_kcal": s.calories_kcal,
        "avg_heart_rate": s.avg_heart_rate,
        "max_heart_rate": s.max_heart_rate,
        "avg_power": s.avg_power,
        "total_work_j": s.total_work_j,
        "raw_workout": bundle["workout"],
        "raw_performance_graph": bundle["performance_graph"],
        "raw_ride_details": bundle["ride_details"],
    }


async def seed(
    sessions: Any, url: str, secret: str, *, count: int, fmt: str, concurrency: int, box: Any
) -> None:
    """One account, one webhook destination, ``count`` workouts each with a pending delivery."""
    templates = [workout_row(b) for b in make_bundles()]
    now = datetime.now(UTC) - timedelta(seconds=1)
    config, hidden = WebhookConfig(url=url, secret=secret).split()
    async with sessions() as session, session.begin():
        account = Account(
            label="bench",
            peloton_user_id="bench-user",
            auth_method="token",
            sync_since=now - timedelta(days=365),
            next_poll_at=now + timedelta(days=1),
        )
        destination = Destination(
            name="bench",
            kind="webhook",
            config=config,
            secrets_encrypted=box.encrypt_json(hidden),
            formats=[fmt],
            concurrency=concurrency,
            enabled=True,
        )
        session.add_all([account, destination])
    chunk = 500
    for start in range(0, count, chunk):
        rows = [
            {**templates[i % BUNDLES], "account_id": account.id, "peloton_workout_id": f"{i:032x}"}
            for i in range(start, min(start + chunk, count))
        ]
        async with sessions() as session, session.begin():
            ids = (await session.execute(insert(Workout).returning(Workout.id), rows)).scalars()
            await session.execute(
                insert(Delivery),
                [
                    {
                        "workout_id": workout_id,
                        "destination_id": destination.id,
                        "format": fmt,
                        "message_id": new_message_id(),
                        "state": DeliveryState.PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                    for workout_id in ids.all()
                ],
            )


# --- the runs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """A run's rate, and the event loop thread's CPU time per delivery (the load on a busy
    machine moves the rate; the CPU cost of each delivery moves much less)."""

    rate: float
    cpu_ms: float

    @classmethod
    def of(cls, count: int, start: float, cpu_start: float) -> Figures:
        elapsed = time.perf_counter() - start
        return cls(count / elapsed, (time.thread_time() - cpu_start) / count * 1000)

    @staticmethod
    def median(runs: list[Figures]) -> Figures:
        return Figures(
            statistics.median(r.rate for r in runs), statistics.median(r.cpu_ms for r in runs)
        )


def quiet_logging() -> Any:
    """Production's JSON log lines (their cost counts), written to /dev/null."""
    configure_logging("INFO", "json")
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed by the caller
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sink))
    return sink


async def engine_run(
    kind: str,
    pg_dsn: str | None,
    url: str,
    *,
    count: int,
    fmt: str,
    concurrency: int,
    convert_workers: int,
    profile: bool,
) -> Figures:
    with tempfile.TemporaryDirectory() as folder:
        async with migrated_database(
            pg_dsn if kind.startswith("postgres") else None, Path(folder)
        ) as db_url:
            settings = Settings(
                _env_file=None,
                env=Environment.TESTING,
                data_dir=Path(folder),
                database_url=db_url,
                secret_key=SECRET_KEY,
                convert_workers=convert_workers,
                webhook_allow_private=True,
                webhook_timeout_s=30,
            )
            async with open_runtime(settings) as rt:
                if kind == "postgres-generic":
                    use_generic_paths(rt.engine)  # what the PostgreSQL fast paths buy
                await seed(
                    rt.sessions,
                    url,
                    generate_secret(),
                    count=count,
                    fmt=fmt,
                    concurrency=concurrency,
                    box=rt.secrets,
                )
                await rt.converter.render(make_bundles()[0], fmt)  # start the pool's worker
                job = DeliveryJob(rt)
                profiler = cProfile.Profile() if profile else None
                start, cpu = time.perf_counter(), time.thread_time()
                if profiler is not None:
                    profiler.enable()
                await job.run_until_idle(max_ticks=10 * count)
                if profiler is not None:
                    profiler.disable()
                figures = Figures.of(count, start, cpu)
                async with rt.sessions() as session:
                    done = (
                        await session.execute(
                            select(func.count()).where(Delivery.state == DeliveryState.SUCCEEDED)
                        )
                    ).scalar_one()
                if done != count:
                    raise RuntimeError(f"only {done} of {count} deliveries succeeded")
                if profiler is not None:
                    print_profile(profiler)
                return figures


def print_profile(profiler: cProfile.Profile) -> None:
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(25)
        lines = out.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print(f"\n--- top functions by {order} ---")
        print("\n".join(lines[start : start + 26]))


def webhook_bodies(fmt: str) -> list[bytes]:
    """The bodies the engine sends for each bundle (same shape and size)."""
    bodies = []
    for bundle in make_bundles():
        data = render_bundle(bundle, fmt)
        payload = {
            "type": "workout.synced",
            "timestamp": "2026-03-01T07:15:30.000Z",
            "data": {
                "account": {"id": 1, "label": "bench", "peloton_user_id": "bench-user"},
                "workout": {"title": "bench"},
                "files": [
                    {
                        "format": fmt,
                        "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "content_base64": base64.b64encode(data).decode(),
                    }
                ],
            },
        }
        bodies.append(json.dumps(payload, separators=(",", ":")).encode())
    return bodies


#: The bare loop's transports: httpx's own (the reference), and the engine's.
TRANSPORTS = ("httpcore", "aiohttp")


async def bare_run(url: str, *, count: int, fmt: str, concurrency: int, transport: str) -> Figures:
    """httpx posting the same bodies at the same concurrency, nothing else."""
    bodies = webhook_bodies(fmt)
    headers = {"content-type": "application/json", "webhook-id": "msg_bench"}
    settings = Settings(_env_file=None, webhook_timeout_s=30)
    queue = iter(range(count))
    client = (
        build_client(settings)
        if transport == "aiohttp"
        else httpx.AsyncClient(timeout=30, follow_redirects=False, trust_env=False)
    )
    async with client:

        async def worker() -> None:
            for i in queue:
                response = await client.post(url, content=bodies[i % BUNDLES], headers=headers)
                response.raise_for_status()

        start, cpu = time.perf_counter(), time.thread_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Figures.of(count, start, cpu)


def run(args: argparse.Namespace, coro: Coroutine[Any, Any, Figures]) -> Figures:
    """On the event loop the service runs on (uvloop), unless ``--loop asyncio``."""
    factory = event_loop_factory() if args.loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def measure(args: argparse.Namespace, url: str, fmt: str, concurrency: int) -> None:
    """Interleaved rounds of every run for one format and concurrency; prints the medians."""
    databases = [d for d in args.databases if not d.startswith("postgres") or args.postgres]
    runs: dict[str, list[Figures]] = {}
    for _ in range(args.repeat):
        for transport in TRANSPORTS:
            label = f"bare httpx/{transport} {fmt} c={concurrency}"
            figures = run(
                args,
                bare_run(
                    url, count=args.count, fmt=fmt, concurrency=concurrency, transport=transport
                ),
            )
            runs.setdefault(label, []).append(figures)
        for kind in databases:
            figures = run(
                args,
                engine_run(
                    kind,
                    args.postgres,
                    url,
                    count=args.count,
                    fmt=fmt,
                    concurrency=concurrency,
                    convert_workers=args.convert_workers,
                    profile=args.profile,
                ),
            )
            runs.setdefault(f"engine {kind} {fmt} c={concurrency}", []).append(figures)
    bare, same = (
        Figures.median(runs[f"bare httpx/{transport} {fmt} c={concurrency}"])
        for transport in TRANSPORTS
    )
    for label, results in runs.items():
        median = Figures.median(results)
        versus = (
            f"{median.rate / bare.rate:>9.0%}{median.rate / same.rate:>9.0%}"
            if label.startswith("engine")
            else " " * 18
        )
        print(f"{label:<36}{median.rate:>13.0f}{versus}{median.cpu_ms:>18.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--formats", nargs="+", default=["json", "tcx"])
    parser.add_argument(
        "--databases",
        nargs="+",
        default=["sqlite", "postgres"],
        choices=["sqlite", "postgres", "postgres-generic"],
        help="postgres-generic: PostgreSQL with its fast paths off (service/dialect.py)",
    )
    parser.add_argument("--convert-workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds; medians")
    parser.add_argument("--postgres", default=os.environ.get("PELOSYNC_TEST_DATABASE_URL"))
    parser.add_argument("--profile", action="store_true", help="cProfile the engine runs")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    sink = quiet_logging()
    print(
        f"{args.count} deliveries, one webhook destination, loopback receiver answering 200; "
        f"convert_workers={args.convert_workers}; {args.loop} loop; {os.cpu_count()} CPUs; "
        f"median of {args.repeat} round(s)"
    )
    print(
        f"{'run':<36}{'deliveries/s':>13}{'vs bare':>9}{'vs same':>9}{'loop CPU ms each':>18}\n"
        "(vs bare: against bare httpx on httpcore, the target's reference; vs same: against bare\n"
        " httpx on the engine's own transport)"
    )
    try:
        with ReceiverProcess() as url:
            for fmt in args.formats:
                for concurrency in args.concurrency:
                    measure(args, url, fmt, concurrency)
    finally:
        sink.close()


if __name__ == "__main__":
    main()
