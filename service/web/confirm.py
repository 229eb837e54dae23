"""Confirmation pages: before a change that destroys or sends, a page saying what will happen
and the POST that does it (or, when there is nothing to do, no button)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.responses import Response

from service.auth.service import Forbidden
from service.runtime import Runtime
from service.web.deps import Viewer, render


@dataclass(frozen=True)
class Confirmation:
    title: str
    back: str  # where "Cancel" goes
    back_text: str
    lines: list[str]  # what will happen, a paragraph each
    action: str | None  # the POST that does it; None: nothing to do
    button: str = "Confirm"
    fields: dict[str, Any] = field(default_factory=dict)  # hidden inputs of the POST
    danger: bool = False  # destroys something


def confirm_page(
    request: Request,
    runtime: Runtime,
    viewer: Viewer,
    page: str,
    confirmation: Confirmation,
    *,
    template: str = "confirm.html",
    **context: Any,
) -> Response:
    """The page (``template`` extends ``confirm.html`` to add details)."""
    values = {f.name: getattr(confirmation, f.name) for f in dataclasses.fields(confirmation)}
    return render(request, runtime, template, viewer, page=page, **values, **context)


def require_admin(viewer: Viewer, what: str) -> None:
    """The 403 page for a read-only key on a page that leads to a change."""
    if not viewer.can_write:
        raise Forbidden(f"this API key is read-only; sign in with an admin key to {what}")


def plural(count: int, word: str) -> str:
    """``1 workout``, ``2 workouts``, ``2 deliveries``."""
    if count == 1:
        return f"{count} {word}"
    many = word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"
    return f"{count} {many}"
