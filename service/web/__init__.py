"""The dashboard: server-rendered pages at ``/`` for people, beside the ``/v1`` admin API.

Signing in with an API key sets a signed session cookie (``service.web.session``); read-only
keys see every page without its buttons and get a 403 page on any change. Pages call the same
domain services as the API; charts are server-side SVG (``service.web.charts``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from service.web import (
    accounts,
    apikeys,
    deliveries,
    destinations,
    events,
    login,
    overview,
    removal,
    sending,
    workouts,
)
from service.web.deps import page_for_http_error

STATIC = Path(__file__).parent / "static"


def install_web(app: FastAPI) -> None:
    """Mount the dashboard's pages and its static files (``/static``)."""
    pages = (login, overview, workouts, deliveries, events, destinations, accounts)
    for module in (*pages, sending, removal, apikeys):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.html_error_page = page_for_http_error  # see service.problems
