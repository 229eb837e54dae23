"""The sandbox's FastAPI app: Auth0 and API routes on one host, plus the admin API."""

from __future__ import annotations

from fastapi import FastAPI

from service.errors import PelosyncError
from service.peloton.sandbox import admin, api, auth
from service.peloton.sandbox.middleware import SandboxMiddleware
from service.peloton.sandbox.state import SandboxState
from service.peloton.sandbox.tokens import OAuthError
from service.peloton.sandbox.web import (
    ApiError,
    admin_error_handler,
    api_error_handler,
    oauth_error_handler,
)


def create_sandbox_app(state: SandboxState) -> FastAPI:
    """A Peloton-compatible app over ``state``.

    Serves both hosts a client talks to, so point ``PELOSYNC_PELOTON_API_URL`` and
    ``PELOSYNC_PELOTON_AUTH_URL`` at the same base URL. Admin docs: ``/_sandbox/docs``.
    """
    app = FastAPI(
        title="Peloton sandbox",
        description="A Peloton-compatible server with generated data, for development and tests.",
        docs_url="/_sandbox/docs",
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
    )
    app.state.sandbox = state
    app.include_router(auth.router)
    app.include_router(api.router)
    app.include_router(admin.router)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(OAuthError, oauth_error_handler)
    app.add_exception_handler(PelosyncError, admin_error_handler)
    app.add_middleware(SandboxMiddleware, state=state)
    return app
