"""Errors raised by the Peloton client, all under :class:`service.errors.ExternalServiceError`.

::

    ExternalServiceError (502)
    └── PelotonError                     anything that went wrong talking to Peloton
        ├── Unauthorized                 Peloton refused our credentials
        │   ├── NeedsReauthentication    the user must link the account again (dead refresh
        │   │                            token, wrong password, expired pasted token); never retried
        │   └── AuthFlowError            the scripted web login met a page it did not expect
        │                                (Peloton changed its login); never retried
        ├── RateLimited                  throttled: 429, Cloudflare's error 1015, a 403 with
        │   │                            Retry-After or from Cloudflare's edge (see below);
        │   │                            carries ``retry_after`` seconds; the caller postpones,
        │   │                            the client does not retry
        │   └── PelotonThrottled         not sent: the address's request budget is paused
        │                                after throttling, until ``retry_at``
        ├── TransientError               5xx, timeouts, connection errors, empty or malformed
        │                                JSON; retried inside the client with backoff first
        ├── PelotonNotFound (404)        the workout/ride/user does not exist (or no longer)
        ├── PelotonForbidden             a 403 with an error body of Peloton's own (a private
        │                                profile, another user's data) or a Cloudflare block;
        │                                a refusal: not retried, not throttling
        └── UnexpectedResponse           any other answer we cannot use (e.g. a 400, a 403
                                         with an unreadable body and no sign of throttling, or
                                         JSON whose fields have the wrong types); not retried

Telling a 403 apart. Peloton's API sits behind Cloudflare, so every answer, Peloton's own
refusals included, may carry ``Server: cloudflare`` and ``CF-RAY``; what decides is the body:

* Cloudflare's rate limiting (error 1015): the text ``error code: 1015`` in its error page, or,
  to clients that accept JSON (this one does) since March 2026, a JSON problem with
  ``error_code: 1015`` (and ``ray_id``). Throttled.
* A 403 with ``Retry-After``: whoever answered asks us to come back later. Throttled.
* A 403 whose body is not JSON, from Cloudflare's edge (``Server: cloudflare`` or ``CF-RAY``)
  and with no other Cloudflare error code in it: a challenge or block page. Throttled: back off
  for long rather than retry hard.
* A 403 with a JSON object from Peloton (``{"status": 403, "error_code": 3030, "message":
  ...}``), or a Cloudflare error other than throttling (1020 "access denied"...): a refusal.
* Anything else (empty, garbled, no marks at all): an answer we cannot read.

Messages never contain tokens or passwords: they are shown to users and logged.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

import httpx

from service.errors import ExternalServiceError
from service.http_headers import parse_retry_after


class PelotonError(ExternalServiceError):
    """Base of every error the Peloton client raises."""

    title = "Peloton error"


class Unauthorized(PelotonError):
    """Peloton refused our credentials, even after a refresh."""

    title = "Peloton refused the credentials"


class NeedsReauthentication(Unauthorized):
    """The account must be linked again by its owner; retrying cannot help.

    ``error_code`` is Auth0's code (``invalid_grant``, ``access_denied``...) when there was one.
    """

    title = "Peloton account must be linked again"

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class AuthFlowError(Unauthorized):
    """The scripted web login did not go as expected (missing cookie, form, or code)."""

    title = "Peloton login flow failed"


class RateLimited(PelotonError):
    """Peloton (or Cloudflare in front of it) is throttling us.

    ``retry_after`` is how many seconds Peloton asked us to wait, or ``None`` if it did not say;
    the scheduler should postpone the account at least that long.
    """

    status_code = 503
    title = "Peloton is rate limiting"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PelotonThrottled(RateLimited):
    """Not sent: Peloton throttled this address lately and every request from it waits until
    ``retry_at`` (see :mod:`service.peloton.budget`). Answered as a 503 with ``Retry-After``."""

    def __init__(self, retry_at: datetime, now: datetime) -> None:
        wait = max((retry_at - now).total_seconds(), 0.0)
        super().__init__(
            f"Peloton is throttling us, retry at {retry_at:%Y-%m-%d %H:%M:%S} UTC",
            retry_after=wait,
        )
        self.retry_at = retry_at
        self.headers = {"Retry-After": str(math.ceil(wait))}


class TransientError(PelotonError):
    """A failure that may go away by itself: 5xx, timeout, connection error, bad JSON."""

    status_code = 503
    title = "Peloton is temporarily unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PelotonNotFound(PelotonError):
    """Peloton answered 404 (or 410): the object does not exist, or no longer."""

    status_code = 404
    title = "Not found on Peloton"


class PelotonForbidden(PelotonError):
    """Peloton refused: a 403 with its own error body (not throttling). Retrying cannot help.

    ``cloudflare_code`` is set when Cloudflare in front of Peloton refused instead (1020...):
    then it says nothing about the resource itself.
    """

    title = "Peloton refused access"

    def __init__(self, message: str, *, cloudflare_code: int | None = None) -> None:
        super().__init__(message)
        self.cloudflare_code = cloudflare_code


class UnexpectedResponse(PelotonError):
    """Peloton answered something we cannot use and that retrying will not fix."""

    title = "Unexpected answer from Peloton"


# --- mapping HTTP answers to errors -----------------------------------------------------------

#: Cloudflare's error code when its rate limiting rule fires (status 429, or 403 on some
#: routes): its error page says ``error code: 1015``, its JSON problem ``"error_code": 1015``.
CLOUDFLARE_RATE_LIMITED = 1015
_CLOUDFLARE_CODE = re.compile(rb"error code: (1\d{3})\b")
_READ = 4096  # how much of an error body is read for these marks


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None if it is empty, not JSON, or not an object."""
    try:
        body = json.loads(response.content)
    except ValueError:  # UnicodeDecodeError included
        return None
    return body if isinstance(body, dict) else None


def via_cloudflare(response: httpx.Response) -> bool:
    """Cloudflare's edge answered, or passed the answer on: ``Server: cloudflare``, ``CF-RAY``."""
    server = response.headers.get("server", "").strip().lower()
    return server == "cloudflare" or "cf-ray" in response.headers


def cloudflare_code(response: httpx.Response, body: dict[str, Any] | None) -> int | None:
    """The code of a Cloudflare 1xxx error (1015: rate limited; 1020: access denied...).

    From its JSON problem (``error_code`` with ``ray_id`` or ``error_name``: Peloton's own
    errors have neither) or from its page's ``error code: 1xxx``; None if it is not one.
    """
    if body is not None:
        code = body.get("error_code")
        cloudflare = "ray_id" in body or "error_name" in body
        if cloudflare and isinstance(code, int) and not isinstance(code, bool):
            return code if 1000 <= code <= 1999 else None
        return None
    found = _CLOUDFLARE_CODE.search(response.content[:_READ])
    return int(found.group(1)) if found else None


def throttled(
    response: httpx.Response, body: dict[str, Any] | None, what: str, now: datetime
) -> RateLimited | None:
    """The :class:`RateLimited` for an error answer with the marks of throttling, else None:
    a 429, Cloudflare's error 1015 (any status), a 403 with ``Retry-After``, or a 403 page (not
    JSON) from Cloudflare's edge with no other Cloudflare error code. See the module docstring.
    """
    status = response.status_code
    code = cloudflare_code(response, body)
    edge_page = body is None and via_cloudflare(response) and code is None
    forbidden_marks = status == 403 and ("retry-after" in response.headers or edge_page)
    if not (status == 429 or code == CLOUDFLARE_RATE_LIMITED or forbidden_marks):
        return None
    if code is not None:
        source = f"Cloudflare (error {code})"
    elif via_cloudflare(response) and status == 403:
        source = "Cloudflare (HTTP 403)"
    else:
        source = f"HTTP {status}"
    retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    if retry_after is None and body is not None:  # Cloudflare's JSON problem says it too
        suggested = body.get("retry_after")
        if isinstance(suggested, int | float) and not isinstance(suggested, bool):
            retry_after = max(0.0, float(suggested)) if math.isfinite(suggested) else None
    return RateLimited(
        f"Peloton is rate limiting {what}: {source}"
        + (f", retry after {retry_after:.0f} s" if retry_after is not None else ""),
        retry_after=retry_after,
    )


def _excerpt(text: object) -> str:
    """A short, single-line excerpt of what Peloton said (it is shown and logged)."""
    if not isinstance(text, str):
        return ""
    return " ".join(text.split())[:200]


def refused(response: httpx.Response, body: dict[str, Any] | None, what: str) -> PelotonError:
    """The error for a 403 without the marks of throttling (see :func:`throttled` first)."""
    status = response.status_code
    if body is not None:
        code = cloudflare_code(response, body)
        if code is not None:  # a Cloudflare block that is not throttling: 1020, 1010...
            title = _excerpt(body.get("title"))
            return PelotonForbidden(
                f"Cloudflare in front of Peloton refused {what}: error {code}"
                + (f" ({title})" if title else ""),
                cloudflare_code=code,
            )
        said = _excerpt(body.get("message") or body.get("detail") or body.get("error"))
        return PelotonForbidden(
            f"Peloton refused {what}: HTTP {status}" + (f" ({said})" if said else "")
        )
    code = cloudflare_code(response, None)
    if code is not None:
        return PelotonForbidden(
            f"Cloudflare in front of Peloton refused {what}: error {code}", cloudflare_code=code
        )
    body_was = "an empty body" if not response.content.strip() else "a body it could not read"
    return UnexpectedResponse(
        f"Peloton answered HTTP {status} to {what} with {body_was}, and no sign of rate limiting"
    )


def api_error(response: httpx.Response, what: str, now: datetime) -> PelotonError | None:
    """The error for a Peloton API answer, or None if it is a success.

    401 is mapped to :class:`Unauthorized`; the client renews the token before getting here.
    """
    status = response.status_code
    if response.is_success:
        return None
    body = json_object(response)
    limited = throttled(response, body, what, now)
    if limited is not None:
        return limited
    if status == 403:
        return refused(response, body, what)
    if status == 401:
        return Unauthorized(f"Peloton refused the access token for {what}")
    if status in (404, 410):
        return PelotonNotFound(f"Peloton has no such object: {what} answered {status}")
    if status == 408 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        return TransientError(f"Peloton failed {what}: HTTP {status}", retry_after=retry_after)
    return UnexpectedResponse(f"Peloton answered HTTP {status} to {what}")
