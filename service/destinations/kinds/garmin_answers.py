"""What Garmin Connect's upload answer says: the activity created, or the one it duplicates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DUPLICATE_CODE = 202  # detailedImportResult failure message: "Duplicate Activity."


def import_result(body: Mapping[str, Any] | None) -> tuple[str | None, str | None, list[str]]:
    """(new activity id, duplicate's existing id, other failure messages) of an upload answer."""
    result = (body or {}).get("detailedImportResult")
    if not isinstance(result, dict):
        return None, None, []
    created = None
    for success in result.get("successes") or []:
        if isinstance(success, dict) and success.get("internalId") is not None:
            created = str(success["internalId"])
            break
    duplicate, problems = None, []
    for failure in result.get("failures") or []:
        if not isinstance(failure, dict):
            continue
        messages = [m for m in failure.get("messages") or [] if isinstance(m, dict)]
        if any(m.get("code") == DUPLICATE_CODE for m in messages):
            internal = failure.get("internalId")
            duplicate = str(internal) if internal is not None else duplicate or ""
        else:
            problems += [f"{m.get('code')}: {m.get('content')}" for m in messages] or ["failed"]
    return created, duplicate, problems
