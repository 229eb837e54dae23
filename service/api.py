"""The admin API: every ``/v1`` router, ``/metrics``, the middleware and the OpenAPI document,
mounted on the app in one place."""

from __future__ import annotations

from fastapi import FastAPI

from service.accounts.router import router as accounts_router
from service.auth.router import router as api_keys_router
from service.config import Settings
from service.deliveries.bulk_router import router as bulk_deliveries_router
from service.deliveries.router import router as deliveries_router
from service.destinations.router import callback_router as strava_callback_router
from service.destinations.router import router as destinations_router
from service.events.router import router as events_router
from service.events.router import webhooks as event_webhooks
from service.openapi import install_openapi
from service.ops.docs import install_docs
from service.ops.metrics_router import router as metrics_router
from service.ops.middleware import RequestContextMiddleware
from service.workouts.files_router import router as files_router
from service.workouts.router import router as workouts_router

# Performance machinery (benchmarks/api.py): route ordering. In order of how often they are
# asked: FastAPI tries a request's path against each route in turn (some microseconds each),
# and the lists are the API's hot paths. (The OpenAPI document keeps its reading order: its
# declared tags, service/openapi.py.)
ROUTERS = (
    workouts_router,
    deliveries_router,
    accounts_router,
    destinations_router,
    bulk_deliveries_router,
    events_router,
    strava_callback_router,
    files_router,
    api_keys_router,
    metrics_router,
)


def install_api(app: FastAPI, settings: Settings) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.webhooks.include_router(event_webhooks)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.api_max_body_bytes)
    install_openapi(app)
    install_docs(app)
