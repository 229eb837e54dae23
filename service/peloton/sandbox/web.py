"""HTTP plumbing shared by the sandbox routers: the state dependency, error types and bodies."""

from __future__ import annotations

import json
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response

from service.errors import PelosyncError
from service.peloton.sandbox.state import SandboxState
from service.peloton.sandbox.tokens import OAuthError


def get_state(request: Request) -> SandboxState:
    return cast(SandboxState, request.app.state.sandbox)


StateDep = Annotated[SandboxState, Depends(get_state)]


class ApiError(PelosyncError):
    """An ``api.onepeloton.com`` error: ``{"status", "error_code", "message", ...}``."""

    def __init__(self, status_code: int, message: str, error_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code

    def body(self) -> dict[str, Any]:
        return {
            "status": self.status_code,
            "error_code": self.error_code,
            "subcode": None,
            "message": self.message,
            "details": None,
        }


def login_required(message: str = "Login required") -> ApiError:
    return ApiError(401, message, 3010)


def forbidden() -> ApiError:
    """Another user's data (a private profile, say)."""
    return ApiError(403, "You do not have permission to access this resource", 3030)


async def api_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def oauth_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=NO_STORE)


async def admin_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, PelosyncError)
    return JSONResponse({"error": exc.title, "detail": exc.message}, status_code=exc.status_code)


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_bytes(body: bytes, status_code: int = 200) -> Response:
    """Pre-serialised JSON (performance graphs are cached as bytes)."""
    return Response(body, status_code=status_code, media_type="application/json")


async def read_params(request: Request) -> dict[str, str]:
    """A JSON or form-urlencoded body as a flat dict of strings (as Auth0 accepts both)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if kind == "application/json":
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise OAuthError(
                400, "invalid_request", "The request body is not valid JSON."
            ) from None
        if not isinstance(data, dict):
            raise OAuthError(400, "invalid_request", "The request body must be a JSON object.")
        bad = [k for k, v in data.items() if v is not None and not isinstance(v, str)]
        if bad:
            raise OAuthError(400, "invalid_request", f"Parameter '{bad[0]}' must be a string.")
        return {k: v for k, v in data.items() if v is not None}
    if kind in ("application/x-www-form-urlencoded", ""):
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    raise OAuthError(400, "invalid_request", f"Unsupported content type {kind!r}.")
