"""Structured logging (structlog over the standard library): console or JSON lines.

Event names are dotted (``sync.poll.finished``) and context goes in key/value pairs. A last
processor blanks any value whose key names a secret, so a token passed by mistake never
reaches a log line.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = ("password", "token", "secret", "authorization", "api_key", "apikey", "cookie")
#: Libraries kept at WARNING whatever PELOSYNC_LOG_LEVEL says: at DEBUG or INFO they log what
#: pelosync keeps out of its own lines (request and response headers with tokens and cookies,
#: OAuth codes in URLs, every SQL parameter with encrypted secrets and key hashes).
QUIET_LIBRARIES = (
    "uvicorn.access",
    "httpx",
    "httpcore",
    "hpack",
    "h11",
    "h2",
    "aiohttp",
    "aiosqlite",
    "asyncpg",
    "sqlalchemy",
    "apscheduler",
    "alembic",
    "multipart",
    "python_multipart",
)


def redact_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in SECRET_KEYS):
            event[key] = "[redacted]"
    return event


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # Tracebacks without local variables: they hold tokens, keys and passwords.
            exception_formatter=(
                structlog.dev.RichTracebackFormatter(show_locals=False)
                if importlib.util.find_spec("rich") is not None
                else structlog.dev.plain_traceback
            ),
        )
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    for noisy in QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.WARNING)
