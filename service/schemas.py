"""Types shared by every API schema: ids, names, pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, StringConstraints

T = TypeVar("T")

MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL: larger ones are simply not found
MAX_LIMIT = 200

# One line of printable text (no control characters: they break logs and PostgreSQL text).
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*$"
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NAME_PATTERN)]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (at most 200).")]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=200, pattern=r"^[A-Za-z0-9_-]+$", description="`next_cursor` of the last page."
    ),
]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise ValueError("the time is out of range once converted to UTC") from None


#: A point in time with its UTC offset ("2026-01-01T00:00:00Z"), given back in UTC; a time
#: without an offset, or one outside years 1 to 9999 in UTC, is refused (422), not guessed.
Instant = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first."""

    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: none.")
