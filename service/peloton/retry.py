"""Bounded retries of transient Peloton failures, with jittered exponential backoff.

Only :class:`TransientError` is retried. Rate limiting is not (the scheduler postpones the
account instead), nor are authentication failures (repeated logins get accounts locked).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from service.peloton.errors import TransientError

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def _retry_after(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc.retry_after if isinstance(exc, TransientError) else None


class _Wait:
    """Exponential backoff with jitter, but never shorter than the server's ``Retry-After``."""

    def __init__(self, base_s: float, max_s: float) -> None:
        self._jittered = wait_exponential_jitter(initial=base_s, max=max_s, jitter=base_s)

    def __call__(self, state: RetryCallState) -> float:
        return max(self._jittered(state), _retry_after(state) or 0.0)


class _Stop:
    """Stop after ``attempts`` tries, or at once if the server asks for a wait over ``max_s``
    (then the caller should postpone rather than hold a sync open)."""

    def __init__(self, attempts: int, max_s: float) -> None:
        self._after_attempts = stop_after_attempt(attempts)
        self._max_s = max_s

    def __call__(self, state: RetryCallState) -> bool:
        retry_after = _retry_after(state)
        return self._after_attempts(state) or (
            retry_after is not None and retry_after > self._max_s
        )


def retrying(
    what: str,
    *,
    attempts: int,
    base_s: float,
    max_s: float,
    sleep: Sleep,
) -> AsyncRetrying:
    """A tenacity retrier for one request; call it as ``await retrying(...)(fn, *args)``.

    Each retry is logged as ``peloton.request.retry`` with the attempt number and the wait.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "peloton.request.retry",
            what=what,
            attempt=state.attempt_number,
            max_attempts=attempts,
            wait_s=round(state.upcoming_sleep, 3),
            error=str(exc),
        )

    return AsyncRetrying(
        stop=_Stop(attempts, max_s),
        wait=_Wait(base_s, max_s),
        retry=retry_if_exception_type(TransientError),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
