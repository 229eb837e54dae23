"""Waiting for what happens in the background (a scheduler, another process) with a bound."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import pytest


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]],
    what: str,
    within: float = 60,
    every: float = 0.05,
) -> None:
    """Poll ``check()`` (plain or async) every ``every`` seconds until it holds; fail naming
    ``what`` after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(every)
