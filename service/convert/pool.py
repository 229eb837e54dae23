"""Conversion off the event loop.

Parsing and writing files is CPU work (milliseconds to tens of milliseconds per workout); run
inline it would stall the API and every other sync. :class:`Converter` runs it in worker
processes (real parallelism on several cores) or, with ``workers=0``, in a thread. The
functions it runs are top-level so they can be sent to another process.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.convert.fit import FitDevice, dump_fit
from service.convert.formats import Format, possible_formats, render
from service.convert.model import Activity
from service.convert.peloton import parse_bundle
from service.errors import ConversionError


@dataclass(frozen=True)
class BundleSummary:
    """What the ledger keeps about a workout, read from its bundle."""

    discipline: str
    title: str
    instructor: str | None
    ride_id: str | None
    start: datetime
    end: datetime
    timezone: str | None
    is_outdoor: bool
    has_gps: bool
    duration_s: float
    distance_m: float | None
    calories_kcal: float | None
    avg_heart_rate: int | None
    max_heart_rate: int | None
    avg_power: float | None
    total_work_j: float | None
    formats: tuple[str, ...]

    @classmethod
    def of(cls, activity: Activity) -> BundleSummary:
        s = activity.summary
        return cls(
            discipline=activity.discipline.value,
            title=activity.title,
            instructor=activity.instructor,
            ride_id=activity.source.ride_id,
            start=activity.start,
            end=activity.end,
            timezone=activity.timezone,
            is_outdoor=activity.is_outdoor,
            has_gps=activity.has_gps,
            duration_s=s.duration_s,
            distance_m=s.distance_m,
            calories_kcal=s.calories_kcal,
            avg_heart_rate=s.avg_heart_rate,
            max_heart_rate=s.max_heart_rate,
            avg_power=s.avg_power,
            total_work_j=s.total_work_j,
            formats=tuple(f.value for f in possible_formats(activity)),
        )


def summarize_bundle(bundle: dict[str, Any]) -> BundleSummary:
    return BundleSummary.of(parse_bundle(bundle))


def render_bundle(bundle: dict[str, Any], fmt: str, device: FitDevice | None = None) -> bytes:
    activity = parse_bundle(bundle)
    if device is not None and fmt == Format.FIT:
        return dump_fit(activity, device=device)
    return render(activity, Format(fmt))


@dataclass(frozen=True)
class RawBundle:
    """A stored workout's three Peloton documents as the database's JSON text.

    Decoding a performance graph takes longer than sending its text to a worker process, so
    the event loop passes the text on and the worker decodes it.
    """

    workout: str
    performance_graph: str
    ride_details: str | None

    def decode(self) -> dict[str, Any]:
        return {
            "workout": json.loads(self.workout),
            "performance_graph": json.loads(self.performance_graph),
            "ride_details": None if self.ride_details is None else json.loads(self.ride_details),
        }


@dataclass(frozen=True)
class Rendered:
    """A converted file and its SHA-256 (hex), both computed off the event loop."""

    data: bytes
    sha256: str


#: The most jobs handed to a worker at once (see ``Converter.render_raw``).
BATCH_JOBS = 4

# One conversion asked of the pool: the stored documents, the format, the FIT device profile.
RenderJob = tuple["RawBundle", str, "FitDevice | None"]


def render_raw_batch(jobs: list[RenderJob]) -> list[Rendered | Exception]:
    """Each job's file, or the exception that job raised: one job's failure is its own."""
    results: list[Rendered | Exception] = []
    for raw, fmt, device in jobs:
        try:
            results.append(render_raw_bundle(raw, fmt, device))
        except Exception as exc:  # handed back to that job's caller, as a lone call would
            results.append(exc)
    return results


def render_raw_bundle(raw: RawBundle, fmt: str, device: FitDevice | None = None) -> Rendered:
    try:
        bundle = raw.decode()
    except ValueError as exc:  # a stored document is not JSON: nothing to convert
        raise ConversionError(f"the stored workout is not valid JSON: {exc}") from None
    data = render_bundle(bundle, fmt, device)
    return Rendered(data, hashlib.sha256(data).hexdigest())


def _settle(
    futures: list[asyncio.Future[Rendered]], done: asyncio.Future[list[Rendered | Exception]]
) -> None:
    """Hand a batch's results (or the pool's failure) to the callers still waiting."""
    failure = None if done.cancelled() else done.exception()
    results = [] if done.cancelled() or failure is not None else done.result()
    for index, future in enumerate(futures):
        if future.done():  # its caller was cancelled meanwhile
            continue
        if done.cancelled():
            future.cancel()
        elif failure is not None:
            future.set_exception(failure)
        else:
            result = results[index]
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


class Converter:
    """Runs conversions in a process pool (or a thread when ``workers`` is 0)."""

    def __init__(self, workers: int = 1) -> None:
        self._executor: Executor
        self._workers = max(workers, 1)
        self._waiting: list[tuple[RenderJob, asyncio.Future[Rendered]]] = []
        if workers > 0:
            # forkserver: children start from a clean process, not a fork of our threads.
            context = multiprocessing.get_context("forkserver")
            self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        else:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convert")

    async def summarize(self, bundle: dict[str, Any]) -> BundleSummary:
        """Raises :class:`ConversionError` for a bundle that cannot be converted."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, summarize_bundle, bundle)

    async def render(
        self, bundle: dict[str, Any], fmt: str, device: FitDevice | None = None
    ) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, render_bundle, bundle, fmt, device)

    async def render_raw(
        self, raw: RawBundle, fmt: str, device: FitDevice | None = None
    ) -> Rendered:
        """Like :meth:`render`, from the stored JSON text, with the file's SHA-256.

        Calls made in one turn of the event loop (the attempts a claim starts together) go to
        the pool together, split over its workers: handing a job to a worker process and
        taking its file back costs the event loop's process about 0.4 ms of CPU, a third of a
        small conversion, and far less per job in a batch.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Rendered] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._hand_over)
        self._waiting.append(((raw, fmt, device), future))
        return await future

    def _hand_over(self) -> None:
        waiting, self._waiting = self._waiting, []
        loop = asyncio.get_running_loop()
        # Over the workers, and in small batches: a batch's files come back together, so the
        # first ones go out while the next batch converts rather than after the last one.
        parts = max(min(len(waiting), self._workers), -(-len(waiting) // BATCH_JOBS))
        for part in range(parts):
            batch = waiting[part::parts]
            futures = [f for _, f in batch]
            try:
                done = loop.run_in_executor(self._executor, render_raw_batch, [j for j, _ in batch])
            except Exception as exc:  # a pool shut down or broken: the callers get the error
                failed: asyncio.Future[list[Rendered | Exception]] = loop.create_future()
                failed.set_exception(exc)
                _settle(futures, failed)
                continue
            done.add_done_callback(functools.partial(_settle, futures))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


__all__ = [
    "BundleSummary",
    "ConversionError",
    "Converter",
    "RawBundle",
    "Rendered",
    "render_bundle",
    "render_raw_batch",
    "render_raw_bundle",
    "summarize_bundle",
]
