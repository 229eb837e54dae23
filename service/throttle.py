"""Throttling of failed sign-ins and wrong API keys, per client address.

A client that fails :attr:`FailureThrottle.limit` times within :attr:`FailureThrottle.window_s`
is answered ``429 Too Many Requests`` with ``Retry-After`` until its oldest failure in the window
ages out, before any key is hashed or looked up; its successes are not counted (a script with a
good key is never slowed). Guessing a 256-bit key is hopeless anyway; this keeps a guesser from
costing the database a lookup per guess (with :class:`~service.auth.service.KeyCache` also
remembering unknown keys briefly) and keeps the logs readable.

The count is kept in each process (``serve --workers N`` and replicas each count on their own),
so a client gets at most ``limit`` failures a window from each. The client address is
``request.client``: behind a reverse proxy, set ``PELOSYNC_FORWARDED_ALLOW_IPS`` to the proxy's
address so that uvicorn takes it from ``X-Forwarded-For`` (docs/security.md).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from fastapi import Request

from service.errors import PelosyncError

#: Failures a client may have in a window before it is refused.
DEFAULT_LIMIT = 10
DEFAULT_WINDOW_S = 60.0
_MAX_CLIENTS = 10_000  # addresses remembered; beyond that the oldest are dropped


class TooManyFailures(PelosyncError):
    """The client failed to authenticate too often: wait ``Retry-After`` seconds."""

    status_code = 429
    title = "Too many failed attempts"

    def __init__(self, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(
            f"too many failed sign-ins or wrong API keys from this address; retry in {seconds} s"
        )
        self.headers = {"Retry-After": str(seconds)}


class FailureThrottle:
    """Recent authentication failures by client address (one per process)."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        window_s: float = DEFAULT_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def check(self, client: str) -> None:
        """Raise :class:`TooManyFailures` if ``client`` is over its limit."""
        failures = self._recent(client)
        if failures is not None and len(failures) >= self.limit:
            raise TooManyFailures(failures[0] + self.window_s - self._clock())

    def failed(self, client: str) -> None:
        """Count one failure of ``client``."""
        failures = self._recent(client)
        if failures is None:
            if len(self._failures) >= _MAX_CLIENTS:
                del self._failures[next(iter(self._failures))]  # the longest-known address
            failures = self._failures[client] = deque()
        failures.append(self._clock())
        while len(failures) > self.limit:
            failures.popleft()

    def clear(self) -> None:
        self._failures.clear()

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        cutoff = self._clock() - self.window_s
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures


def client_address(request: Request) -> str:
    """The address throttling counts by: the peer's, or (behind a trusted proxy, see
    ``PELOSYNC_FORWARDED_ALLOW_IPS``) the one uvicorn took from ``X-Forwarded-For``."""
    return request.client.host if request.client is not None else "unknown"


failures = FailureThrottle()
