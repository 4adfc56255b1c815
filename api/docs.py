"""The documentation page, ``/docs`` (Swagger UI), with its script and styles served from
this install: FastAPI's own page loads them from a CDN, which the machines o2c runs on
may not reach (they see only package registries), leaving a blank page. The assets come
from the ``fastapi-offline`` distribution (Swagger UI 5, which renders OpenAPI 3.1).
There is no ``/redoc``: ReDoc fetches its logo from its CDN whatever it is given."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = "/docs/assets"


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets (create the app with FastAPI's docs URLs off)."""
    static = files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )
