"""Fetch speed of the Peloton client against the in-process sandbox with injected latency.

One sandbox user holds 200 workouts; every request waits 100 ms in the sandbox (as a distant
API would). Each run lists every workout and downloads every bundle (workout + performance graph
+ class details: :meth:`PelotonClient.fetch_bundle`), first strictly one request at a time, then
with the client's bounded concurrency (the ``peloton_concurrency`` default, 4, and 8 and 16).

For each run it prints the wall time, the requests the sandbox logged, and the ratio of the wall
time to the latency bound, ``requests x latency / concurrency``: 1.0 would mean latency is all
the time there is. Sandbox and client share one process and one event loop, so their CPU time
(generating and parsing 1 Hz graphs) adds to the wall time; the last row, with no latency,
shows that cost alone.

    python -m benchmarks.peloton_fetch [--workouts 200] [--latency-ms 100] [--every-n 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from service.config import Settings
from service.peloton.client import PelotonClient
from service.peloton.models import PelotonConfig, TokenSet
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox

DEFAULT_CONCURRENCY = int(Settings.model_fields["peloton_concurrency"].default)
DEFAULT_EVERY_N = int(Settings.model_fields["peloton_every_n"].default)


@dataclass(frozen=True)
class Run:
    label: str
    concurrency: int
    latency_ms: float
    bundles: int
    requests: int
    list_s: float
    wall_s: float
    mb: float

    @property
    def bound_s(self) -> float:
        return self.requests * self.latency_ms / 1000 / self.concurrency

    def row(self) -> str:
        ratio = f"{self.wall_s / self.bound_s:6.2f}" if self.bound_s else "     -"
        return (
            f"{self.label:<12} {self.concurrency:>4} {self.requests:>8} {self.bundles:>7} "
            f"{self.mb:>6.1f} {self.list_s:>7.2f} {self.wall_s:>8.2f} {self.bound_s:>8.2f} "
            f"{ratio} {self.bundles / self.wall_s:>10.1f}"
        )


HEADER = (
    f"{'mode':<12} {'conc':>4} {'requests':>8} {'bundles':>7} {'MB':>6} {'list s':>7} "
    f"{'wall s':>8} {'bound s':>8} {' ratio':>6} {'bundles/s':>10}"
)


def _size_mb(bundles: list[dict[str, Any]]) -> float:
    # Rough payload size: the graphs dominate, and they are sent compact.
    return sum(len(json.dumps(b, separators=(",", ":"))) for b in bundles) / 1e6


async def one_run(
    state: SandboxState,
    http: httpx.AsyncClient,
    config: PelotonConfig,
    tokens: TokenSet,
    user_id: str,
    *,
    label: str,
    concurrency: int,
    latency_ms: float,
) -> Run:
    """List and download everything with ``concurrency`` requests in flight at most."""
    client = PelotonClient(
        http=http,
        config=config,
        tokens=tokens,
        semaphore=asyncio.Semaphore(concurrency),
        clock=lambda: datetime.fromtimestamp(state.now(), UTC),
    )
    state.latency_ms = latency_ms
    state.log.clear()
    start = time.perf_counter()
    ids = [w.id async for w in client.iter_workouts(user_id) if w.id]
    listed = time.perf_counter()
    if concurrency == 1:
        bundles = [await client.fetch_bundle(i) for i in ids]
    else:
        bundles = list(await asyncio.gather(*(client.fetch_bundle(i) for i in ids)))
    wall = time.perf_counter() - start
    state.latency_ms = 0
    return Run(
        label,
        concurrency,
        latency_ms,
        len(bundles),
        state.log.total,
        listed - start,
        wall,
        _size_mb(bundles),
    )


async def main(workouts: int, latency_ms: float, every_n: int, levels: list[int]) -> None:
    state = SandboxState(SandboxConfig(seed=42, users=0))
    account = state.add_user(workouts=workouts)
    user_id = account.user.user_id
    state.workouts(account)  # generate the history now, not inside the first timed run
    async with run_sandbox(state) as url, httpx.AsyncClient() as http:
        config = PelotonConfig(api_url=url, auth_url=url, every_n=every_n)
        refresh = state.describe_user(account)["refresh_tokens"][0]["token"]
        linking = PelotonClient(
            http=http, config=config, tokens=TokenSet.supplied(refresh_token=refresh)
        )
        await linking.me()  # trade the refresh token once; the runs below send no auth traffic
        tokens = linking.tokens
        assert tokens is not None

        print(
            f"Peloton fetch: {workouts} workouts with graphs (every_n={every_n}), "
            f"{latency_ms:g} ms sandbox latency per request, client and sandbox in one process"
        )
        print(HEADER)
        runs = [("sequential", 1, latency_ms)]
        runs += [("bounded", level, latency_ms) for level in levels]
        runs.append(("no latency", DEFAULT_CONCURRENCY, 0.0))
        results: list[Run] = []
        for label, concurrency, latency in runs:
            run = await one_run(
                state,
                http,
                config,
                tokens,
                user_id,
                label=label,
                concurrency=concurrency,
                latency_ms=latency,
            )
            results.append(run)
            print(run.row(), flush=True)
        sequential = results[0]
        for run in results[1:-1]:
            print(
                f"concurrency {run.concurrency:>2}: {sequential.wall_s / run.wall_s:.1f}x faster "
                f"than sequential"
            )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workouts", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--every-n", type=int, default=DEFAULT_EVERY_N)
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=sorted({DEFAULT_CONCURRENCY, 8, 16}),
        help="bounded-concurrency levels to run (default: the setting's default, 8, 16)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.workouts, args.latency_ms, args.every_n, args.concurrency))


if __name__ == "__main__":
    cli()
