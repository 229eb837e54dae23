"""The API's documentation page, served with its script and style from this service.

FastAPI's own ``/docs`` loads Swagger UI from a CDN, so it is blank on a network without
internet. The page here takes Swagger UI (Apache-2.0) from the ``fastapi-offline`` package's
wheel, served at ``/docs/assets``. ReDoc is left out: its page fetches its logo from its
vendor's CDN whatever the options.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
FAVICON = "/static/icon.svg"  # the dashboard's icon


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI), its assets from this service only."""
    app.mount(ASSETS, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    title = f"{app.title} API"
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=FAVICON,
            # No badge from the public validator service: nothing leaves this service.
            swagger_ui_parameters={"validatorUrl": None},
        )
