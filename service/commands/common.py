"""Helpers shared by the commands: settings, logging, running async code, printing."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from service.config import Settings, get_settings
from service.logging import configure_logging

T = TypeVar("T")


def setup(log_level: str | None = None) -> Settings:
    settings = get_settings()
    configure_logging(log_level or settings.log_level, settings.log_format)
    return settings


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
