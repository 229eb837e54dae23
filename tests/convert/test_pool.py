"""The conversion pool: jobs asked for together travel to the workers together, and each
caller still gets its own file or its own error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from service.convert.pool import Converter, RawBundle, render_raw_bundle
from service.errors import ConversionError
from service.peloton.sandbox import generate_bundle


def raw_of(bundle: dict[str, Any]) -> RawBundle:
    return RawBundle(json.dumps(bundle["workout"]), json.dumps(bundle["performance_graph"]), None)


def counting_submits(converter: Converter) -> list[int]:
    """How many jobs each hand-over to the pool carried."""
    sizes: list[int] = []
    submit: Callable[..., Any] = converter._executor.submit

    def counted(fn: Callable[..., Any], *args: Any) -> Any:
        sizes.append(len(args[0]))
        return submit(fn, *args)

    converter._executor.submit = counted  # type: ignore[method-assign]
    return sizes


@pytest.mark.parametrize("workers", [0, 1, 2])
async def test_jobs_of_one_turn_go_together_and_keep_their_own_outcome(workers: int) -> None:
    converter = Converter(workers)
    try:
        sizes = counting_submits(converter)
        good = [raw_of(generate_bundle(seed, "cycling_class", duration=300)) for seed in (1, 2)]
        broken = RawBundle("{not json", "{}", None)
        outcomes = await asyncio.gather(
            converter.render_raw(good[0], "tcx"),
            converter.render_raw(broken, "tcx"),
            converter.render_raw(good[1], "json"),
            return_exceptions=True,
        )
        assert sorted(sizes, reverse=True) == ([3] if workers < 2 else [2, 1])
        assert outcomes[0] == render_raw_bundle(good[0], "tcx")
        assert outcomes[2] == render_raw_bundle(good[1], "json")
        assert isinstance(outcomes[1], ConversionError)
        assert "not valid JSON" in outcomes[1].message

        # A caller that gives up leaves the others theirs; a later turn is a new batch.
        first = asyncio.ensure_future(converter.render_raw(good[0], "fit"))
        second = asyncio.ensure_future(converter.render_raw(good[1], "fit"))
        await asyncio.sleep(0)
        first.cancel()
        assert (await second).data == render_raw_bundle(good[1], "fit").data
        assert first.cancelled()
        handed_over = len(sizes)
        assert (await converter.render_raw(good[0], "tcx")) == outcomes[0]
        assert sizes[handed_over:] == [1]
    finally:
        converter.close()


async def test_a_large_turn_is_split_into_small_batches() -> None:
    """Files of a batch come back together: nine jobs go as three batches, whose first files
    can be sent while the others convert."""
    converter = Converter(1)
    try:
        sizes = counting_submits(converter)
        raw = raw_of(generate_bundle(3, "cycling_class", duration=300))
        files = await asyncio.gather(*(converter.render_raw(raw, "json") for _ in range(9)))
        assert sizes == [3, 3, 3]
        assert len({f.sha256 for f in files}) == 1
    finally:
        converter.close()


async def test_a_closed_pool_fails_its_callers_rather_than_leaving_them_waiting() -> None:
    converter = Converter(0)
    converter.close()
    raw = raw_of(generate_bundle(4, "cycling_class", duration=300))
    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match="shutdown"):
            await converter.render_raw(raw, "json")
