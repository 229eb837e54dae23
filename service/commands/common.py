"""Helpers shared by the commands: settings, logging, running async code, printing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from service.config import Settings, get_settings
from service.logging import configure_logging

T = TypeVar("T")


def setup(log_level: str | None = None) -> Settings:
    settings = get_settings()
    configure_logging(log_level or settings.log_level, settings.log_format)
    return settings


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (``uvicorn[standard]`` brings it), else asyncio's.

    The service is a few hundred sockets and timers driven by one loop; uvloop runs them with
    a fraction of the CPU of the standard loop (a webhook delivery costs about a fifth less).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - installed with uvicorn[standard] on Linux/macOS
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine to completion on the service's event loop."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(coro)
