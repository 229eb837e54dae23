"""One error hierarchy for the whole service.

::

    PelosyncError                      message, status_code (HTTP), title
    ├── InvalidInput (422)             bad input from a user: CLI argument, API body, a bundle file
    │   └── ConversionError (422)      a workout bundle that cannot be converted
    │       └── UnsupportedFormat (422)  e.g. GPX for a workout without GPS
    ├── NotFound (404)
    ├── Conflict (409)
    └── ExternalServiceError (502)     a remote service misbehaved (Peloton, a destination)

Later domains add their own subclasses under these. The API renders every one as RFC 9457
problem details with ``status_code``; the CLI prints ``message`` on one line and exits 2.
"""

from __future__ import annotations

from pydantic import ValidationError


class PelosyncError(Exception):
    """Base of every error the service raises on purpose."""

    status_code: int = 500
    title: str = "Internal error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(PelosyncError):
    """``field``: the input at fault (``config.url``), when one is; the API names it in the
    problem's ``errors`` and the dashboard shows the message beside it."""

    status_code = 422
    title = "Invalid input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConversionError(InvalidInput):
    """A workout bundle is malformed or carries values that cannot be converted."""

    title = "Workout cannot be converted"


class UnsupportedFormat(ConversionError):
    """The workout cannot be expressed in the requested format."""

    title = "Format not possible for this workout"


class NotFound(PelosyncError):
    status_code = 404
    title = "Not found"


class Conflict(PelosyncError):
    status_code = 409
    title = "Conflict"


class ExternalServiceError(PelosyncError):
    status_code = 502
    title = "Remote service error"


def validation_problems(error: ValidationError) -> list[tuple[str, str]]:
    """Each problem pydantic found, as ``(where, message)``: the dotted location (``""`` for
    the value as a whole) and the message without pydantic's ``"Value error, "`` prefix.

    The one reading of a :class:`ValidationError` every conversion into this hierarchy uses.
    """
    return [
        (".".join(str(part) for part in e["loc"]), str(e["msg"]).removeprefix("Value error, "))
        for e in error.errors(include_url=False, include_input=False)
    ]
