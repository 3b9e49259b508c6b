"""The FastAPI application: Chroma's v2 routes of the planes a process serves, over the service
``wiring.py`` builds; errors mapped once (``errors.py``); Swagger UI at ``/docs`` from files
installed with the package, so it works offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from chroma_serverless import __version__, wiring
from chroma_serverless.auth.access import Authenticator
from chroma_serverless.http import docs
from chroma_serverless.http.errors import InternalErrors, install_error_handlers
from chroma_serverless.http.guard import guarded_route
from chroma_serverless.http.middleware import BodyLimit
from chroma_serverless.http.responses import JSON
from chroma_serverless.http.routes import control_routers, data_routers
from chroma_serverless.http.telemetry import RequestTelemetry
from chroma_serverless.types import PLANES

if TYPE_CHECKING:
    from collections.abc import Collection

    from starlette.routing import BaseRoute

    from chroma_serverless.ports import Credentials
    from chroma_serverless.service.service import Service
    from chroma_serverless.settings import Settings
    from chroma_serverless.types import Plane


def build_app(settings: Settings, planes: Collection[Plane] = PLANES) -> FastAPI:
    """The app for ``settings``; a Lambda function serves only its ``planes``."""
    parts = wiring.build(settings, planes)
    return create_app(parts.service, settings, parts.credentials, planes)


def create_app(
    service: Service,
    settings: Settings,
    credentials: Credentials,
    planes: Collection[Plane] = PLANES,
) -> FastAPI:
    app = FastAPI(
        title="chroma-serverless",
        version=__version__,
        description="Chroma's v2 REST API on LanceDB, for AWS Lambda or a laptop.",
        default_response_class=JSON,
        redirect_slashes=False,  # the official client treats a redirect as an error
        docs_url=None,  # served from installed files below, not from a CDN
        redoc_url=None,
    )
    app.state.service = service
    route_class = guarded_route(Authenticator(credentials, settings.auth))
    routers = {"control": control_routers, "data": data_routers}
    routes: list[BaseRoute] = []
    for plane in planes:
        for router in routers[plane](service, settings, route_class):
            routes.extend(router.routes)
            # Flat on the app's router: include_router() keeps each router nested, and FastAPI
            # then walks every level of the tree to match each request.
            app.router.routes.extend(router.routes)
    docs.install(app)
    install_error_handlers(app)
    app.add_middleware(InternalErrors)  # the innermost: its 500s pass CORS and telemetry
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["chroma-trace-id"],
        )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestTelemetry, routes=routes)  # the outermost: sees every request
    return app
