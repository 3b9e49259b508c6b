"""The API's documentation pages (Swagger UI at ``/docs``, ReDoc at ``/redoc``), their scripts
and styles served from the files the ``fastapi-offline`` package installs rather than from a
CDN, so the pages work without internet access."""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from starlette.responses import HTMLResponse

ASSETS = "/docs/assets"


def install(app: FastAPI) -> None:
    """``/docs``, ``/redoc`` and the files they load, under ``ASSETS``."""
    directory = files("fastapi_offline").joinpath("static")
    app.mount(ASSETS, StaticFiles(directory=str(directory)), name="docs-assets")
    title = f"{app.title} {app.version}"

    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url if app.openapi_url else "",
            title=title,
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        )

    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + app.openapi_url if app.openapi_url else "",
            title=title,
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
        )

    # Starlette routes: the pages take no parameters for FastAPI to read or to document.
    app.router.add_route("/docs", swagger, include_in_schema=False)
    app.router.add_route("/redoc", redoc, include_in_schema=False)
