"""The OpenAPI document: problem details for every error, one security scheme.

Routers declare their errors with :func:`errors`; :func:`install_openapi` then serves every
4xx/5xx response as ``application/problem+json`` with the :class:`Problem` schema, which is
what :mod:`service.problems` actually sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from service.problems import PROBLEM_JSON

DESCRIPTIONS = {
    400: "Bad request",
    401: "No API key, or an unknown or revoked one",
    403: "The API key's role does not allow this",
    404: "No such object",
    409: "Conflicts with the object's state",
    413: "Request body too large",
    422: "Invalid request: `errors` names each field",
    502: "A remote service (Peloton, a destination) failed",
    503: "A remote service is unavailable or rate limiting",
}


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = Field(default=None, description="422: one per bad field.")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: these problem responses, and any other 4xx."""
    responses: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem, "description": DESCRIPTIONS.get(code, "Error")} for code in codes
    }
    responses["4XX"] = {"model": Problem, "description": "Other client errors"}
    return responses


# The document's sections in reading order (Swagger UI follows this list, not the order the
# routes are tried in, which puts the hot lists first).
TAGS: list[dict[str, Any]] = [
    {"name": "accounts", "description": "Linked Peloton accounts and their sync runs."},
    {"name": "destinations", "description": "Where workouts go: webhooks, files, services."},
    {"name": "workouts", "description": "Workouts fetched from Peloton and their files."},
    {"name": "deliveries", "description": "Every file sent (or to send), with its attempts."},
    {
        "name": "events",
        "description": "Operational events (an account needs re-linking, a destination was "
        "disabled...) and the request each event type sends to a subscribed webhook.",
    },
    {"name": "api keys", "description": "Keys to this API (admin keys only)."},
    {"name": "operations", "description": "Liveness, readiness and metrics."},
]


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            webhooks=app.webhooks.routes,
            tags=TAGS,
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content")
                    if status[0] in "45" and content and "application/json" in content:
                        response["content"] = {PROBLEM_JSON: content["application/json"]}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
