"""Errors raised by the Peloton client, all under :class:`service.errors.ExternalServiceError`.

::

    ExternalServiceError (502)
    └── PelotonError                     anything that went wrong talking to Peloton
        ├── Unauthorized                 Peloton refused our credentials
        │   ├── NeedsReauthentication    the user must link the account again (dead refresh
        │   │                            token, wrong password, expired pasted token); never retried
        │   └── AuthFlowError            the scripted web login met a page it did not expect
        │                                (Peloton changed its login); never retried
        ├── RateLimited                  403, 429 or Cloudflare "error code: 1015"; carries
        │                                ``retry_after`` seconds; the caller postpones, the
        │                                client does not retry
        ├── TransientError               5xx, timeouts, connection errors, empty or malformed
        │                                JSON; retried inside the client with backoff first
        ├── PelotonNotFound (404)        the workout/ride/user does not exist (or no longer)
        └── UnexpectedResponse           any other answer we cannot use (e.g. a 400, or JSON
                                         whose fields have the wrong types); not retried

Messages never contain tokens or passwords: they are shown to users and logged.
"""

from __future__ import annotations

from datetime import datetime

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


class UnexpectedResponse(PelotonError):
    """Peloton answered something we cannot use and that retrying will not fix."""

    title = "Unexpected answer from Peloton"


# --- mapping HTTP answers to errors -----------------------------------------------------------

#: Cloudflare's body when its rate limiting rule fires (status 429, or 403 on some routes).
CLOUDFLARE_RATE_LIMIT_MARKER = b"error code: 1015"


def is_rate_limited(response: httpx.Response) -> bool:
    """403, 429, or Cloudflare's 1015 body on any error status."""
    if response.status_code in (403, 429):
        return True
    return not response.is_success and CLOUDFLARE_RATE_LIMIT_MARKER in response.content[:4096]


def rate_limited(response: httpx.Response, what: str, now: datetime) -> RateLimited:
    retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    cloudflare = CLOUDFLARE_RATE_LIMIT_MARKER in response.content[:4096]
    source = "Cloudflare (error 1015)" if cloudflare else f"HTTP {response.status_code}"
    return RateLimited(
        f"Peloton is rate limiting {what}: {source}"
        + (f", retry after {retry_after:.0f} s" if retry_after is not None else ""),
        retry_after=retry_after,
    )


def api_error(response: httpx.Response, what: str, now: datetime) -> PelotonError | None:
    """The error for a Peloton API answer, or None if it is a success.

    401 is mapped to :class:`Unauthorized`; the client renews the token before getting here.
    """
    status = response.status_code
    if response.is_success:
        return None
    if is_rate_limited(response):
        return rate_limited(response, what, now)
    if status == 401:
        return Unauthorized(f"Peloton refused the access token for {what}")
    if status in (404, 410):
        return PelotonNotFound(f"Peloton has no such object: {what} answered {status}")
    if status == 408 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        return TransientError(f"Peloton failed {what}: HTTP {status}", retry_after=retry_after)
    return UnexpectedResponse(f"Peloton answered HTTP {status} to {what}")
