"""Cursor pagination: ``{"items": [...], "next_cursor": "..."}``.

A cursor is opaque to clients: URL-safe base64 of the last item's ``[sort key, id]``. Lists are
ordered by (sort key, id), newest first, and the next page starts strictly after the cursor,
so rows added meanwhile never shift a page the way offsets do.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from fastapi import Response
from sqlalchemy import Row

from service.errors import InvalidInput
from service.schemas import MAX_ID, Page

T = TypeVar("T")


def encode_cursor(sort_key: datetime | int | str | None, row_id: int) -> str:
    key: Any = sort_key.isoformat() if isinstance(sort_key, datetime) else sort_key
    raw = json.dumps([key, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor: not a cursor from this API") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[1], int)
        or isinstance(value[1], bool)
        or not 1 <= value[1] <= MAX_ID  # ids are 32-bit: a larger one would overflow the query
    ):
        raise InvalidInput("cursor: not a cursor from this API")
    return value


def decode_time_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """``(datetime, id)`` from a cursor over a time-ordered list."""
    if cursor is None:
        return None
    key, row_id = _decode(cursor)
    try:
        when = datetime.fromisoformat(key) if isinstance(key, str) and len(key) < 40 else None
        # In UTC, as the query compares it: a time near year 1 or 9999 may not convert.
        when = when.astimezone(UTC) if when is not None and when.tzinfo is not None else None
    except (ValueError, OverflowError):
        when = None
    if when is None:
        raise InvalidInput("cursor: not a cursor for this list")
    return when, row_id


def decode_id_cursor(cursor: str | None) -> int | None:
    """The id from a cursor over an id-ordered list."""
    if cursor is None:
        return None
    _, row_id = _decode(cursor)
    return int(row_id)


def page_of(items: list[T], limit: int, cursor_of: Callable[[T], str]) -> Page[T]:
    """A page from up to ``limit + 1`` fetched items (the extra one says there is more)."""
    more = len(items) > limit
    items = items[:limit]
    return Page[T](items=items, next_cursor=cursor_of(items[-1]) if more and items else None)


# Performance machinery (benchmarks/api.py): the lists' rows to JSON without pydantic.
def page_response(
    rows: Sequence[Row[Any]], limit: int, cursor_of: Callable[[Row[Any]], str]
) -> Response:
    """A page of result rows as JSON, the hot path of the lists.

    ``rows`` are up to ``limit + 1`` rows whose columns are the fields of the route's item
    schema (declared with ``response_model=Page[...]`` for the OpenAPI document); ``cursor_of``
    is given the last one shown. The rows go to JSON without a pydantic round trip: their
    columns already have the schema's types, and validating then dumping a page of 50 took
    more CPU than the query. orjson writes what pydantic would: UTC times end in ``Z``
    (``tests/api/test_lists.py`` compares the two).
    """
    more = len(rows) > limit
    shown = rows[:limit]
    next_cursor = cursor_of(shown[-1]) if more and shown else None
    fields = shown[0]._fields if shown else ()
    body = orjson.dumps(
        {
            "items": [dict(zip(fields, row, strict=True)) for row in shown],
            "next_cursor": next_cursor,
        },
        option=orjson.OPT_UTC_Z,
    )
    return Response(body, media_type="application/json")
