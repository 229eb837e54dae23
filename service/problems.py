"""RFC 9457 problem details: the one place errors become HTTP responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service.errors import PelosyncError

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
# Set by the dashboard (``app.state.html_error_page``): a browser asking for a page that does
# not exist outside the API gets a page, with the dashboard's navigation, not JSON.
HtmlErrorPage = Callable[[Request, int, str, str], Awaitable[Response]]


def _page_handler(request: Request) -> HtmlErrorPage | None:
    if request.url.path.startswith("/v1/") or "text/html" not in request.headers.get("accept", ""):
        return None
    handler: HtmlErrorPage | None = getattr(request.app.state, "html_error_page", None)
    return handler


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(PelosyncError)
    async def domain_error(_request: Request, exc: PelosyncError) -> JSONResponse:
        field = getattr(exc, "field", None)
        extra = {"errors": [{"field": field, "message": exc.message}]} if field else {}
        response = problem(exc.status_code, exc.title, exc.message, **extra)
        response.headers.update(getattr(exc, "headers", None) or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        first = errors[0] if errors else {"field": "request", "message": "invalid"}
        return problem(
            422, "Invalid request", f"{first['field']}: {first['message']}", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = {
            404: "Not found",
            405: "Method not allowed",
            401: "Unauthorized",
            413: "Content too large",
        }.get(exc.status_code, "HTTP error")
        page = _page_handler(request)
        if page is not None and exc.status_code in (404, 405):
            return await page(request, exc.status_code, title, str(exc.detail or ""))
        response = problem(exc.status_code, title, str(exc.detail) if exc.detail else None)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.unhandled_error", error=type(exc).__name__)
        return problem(500, "Internal error", "an unexpected error occurred; see the server log")
