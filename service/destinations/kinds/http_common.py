"""What the fitness-service kinds (Strava, intervals.icu, Runalyze, Garmin Connect) share: the
clock and sleep types, the activity's name and description, mapping HTTP answers and transport
failures onto the :mod:`.base` error tree, and keeping credentials out of every message and
excerpt."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from service.destinations.kinds.base import (
    DeliveryError,
    DestinationGone,
    NeedsReauthorization,
    PermanentFailure,
    Postponed,
    WorkoutInfo,
    excerpt,
)
from service.http_headers import parse_retry_after

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

#: When a 429 carries no Retry-After, wait this long.
DEFAULT_RATE_LIMIT_WAIT_S = 300.0
REDACTED = "[redacted]"
FOOTER = "Synced from Peloton by pelosync"


def utcnow() -> datetime:
    return datetime.now(UTC)


def activity_text(workout: WorkoutInfo) -> tuple[str, str]:
    """The activity's name (the class title) and description (discipline, instructor, and
    where it came from)."""
    discipline = workout.discipline.replace("_", " ").capitalize()
    name = workout.title.strip() or f"Peloton {discipline.lower()}"
    first = f"{discipline} class with {workout.instructor}" if workout.instructor else discipline
    return name, f"{first}\n{FOOTER}"


class Redactor:
    """Replaces known secret values (tokens, API keys) in any text that leaves a kind.

    Remote services sometimes echo what they were sent, and token endpoints answer with tokens;
    everything that goes into an error message or a stored response excerpt passes through here.
    Values of 8 characters or more are replaced wherever they appear; shorter ones given as
    ``words`` (header values a user chose, which may be short credentials) wherever they stand
    alone, so that a 4-character value does not blank every word containing it.
    """

    def __init__(self, secrets: Iterable[object] = (), *, words: Iterable[object] = ()) -> None:
        self._values: set[str] = set()
        self._words: set[str] = set()
        self.add(*secrets)
        self.add_words(*words)

    def add(self, *values: object) -> None:
        for value in values:
            # Short values would redact ordinary words; real secrets are long.
            if isinstance(value, str) and len(value) >= 8:
                self._values.add(value)

    def add_words(self, *values: object) -> None:
        """Redact these even when short: as a substring from 8 characters, else as a word."""
        for value in values:
            if isinstance(value, str) and value.strip():
                (self._values if len(value) >= 8 else self._words).add(value.strip())

    def text(self, text: str | None) -> str | None:
        if text is None:
            return None
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        for word in sorted(self._words, key=len, reverse=True):
            text = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w-])", REDACTED, text)
        return text

    def excerpt(self, response: httpx.Response) -> str | None:
        return self.text(excerpt(response.content))


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None if it is not one."""
    try:
        value = json.loads(response.content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def retry_after(response: httpx.Response, now: datetime) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"), now)


def transport_error(service: str, what: str, exc: httpx.HTTPError) -> DeliveryError:
    """A request that got no answer: retryable. Only the exception's class is named, since
    some transports put request details in their messages."""
    return DeliveryError(f"{service} did not answer {what}: {type(exc).__name__}")


#: How long one call to a service's API may take (uploads may set their own).
REQUEST_TIMEOUT_S = 30.0


async def call_api(
    http: httpx.AsyncClient,
    service: str,
    what: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    **kwargs: Any,
) -> httpx.Response:
    """One request to a service's API; no answer at all is :func:`transport_error`."""
    kwargs.setdefault("timeout", REQUEST_TIMEOUT_S)
    try:
        return await http.request(method, url, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise transport_error(service, what, exc) from None


def status_error(
    service: str,
    what: str,
    response: httpx.Response,
    *,
    now: datetime,
    redactor: Redactor,
    detail: str | None = None,
) -> DeliveryError:
    """The error for a non-2xx answer that the kind has no special rule for.

    401/403: the credentials were refused; 429: postponed (Retry-After, or 5 minutes); 408, 425
    and 5xx: retryable; 410: gone; anything else (3xx included: an API that redirects means a
    wrong base URL): permanent.
    """
    status = response.status_code
    body = redactor.excerpt(response)
    suffix = f": {redactor.text(detail)}" if detail else ""
    common: dict[str, Any] = {"remote_status": status, "response_excerpt": body}
    if status in (401, 403):
        return NeedsReauthorization(
            f"{service} refused the credentials for {what} (HTTP {status}){suffix}; "
            "re-authorize the destination",
            **common,
        )
    if status == 429:
        wait = retry_after(response, now)
        return Postponed(
            f"{service} is rate limiting {what} (HTTP 429)",
            retry_after=DEFAULT_RATE_LIMIT_WAIT_S if wait is None else wait,
            **common,
        )
    if status in (408, 425) or status >= 500:
        return DeliveryError(
            f"{service} failed {what} (HTTP {status}){suffix}",
            retry_after=retry_after(response, now),
            **common,
        )
    if status == 410:
        return DestinationGone(f"{service} says {what} is gone (HTTP 410){suffix}", **common)
    if 300 <= status < 400:
        return PermanentFailure(
            f"{service} redirected {what} (HTTP {status}); check the configured API URL",
            **common,
        )
    return PermanentFailure(f"{service} rejected {what} (HTTP {status}){suffix}", **common)
