"""System routes: heartbeat, version, pre-flight checks, health, identity; the retired v1 API."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from chroma_serverless import __version__
from chroma_serverless.auth.access import ANONYMOUS
from chroma_serverless.errors import DeprecatedApiError
from chroma_serverless.http.responses import JSON
from chroma_serverless.http.routes.paths import API
from chroma_serverless.types import DEFAULT_DATABASE, DEFAULT_TENANT

if TYPE_CHECKING:
    from fastapi.routing import APIRoute

    from chroma_serverless.service.service import Service
    from chroma_serverless.settings import Settings
    from chroma_serverless.types import Principal


def system_router(service: Service, settings: Settings, route_class: type[APIRoute]) -> APIRouter:
    router = APIRouter(tags=["system"], route_class=route_class)

    @router.get(API)
    @router.get(API + "/heartbeat")
    def heartbeat() -> JSON:
        return JSON({"nanosecond heartbeat": time.time_ns()})

    @router.get(API + "/version")
    def version() -> JSON:
        return JSON(__version__)

    @router.get(API + "/pre-flight-checks")
    def pre_flight_checks() -> JSON:
        return JSON({"max_batch_size": settings.batch_size, "supports_base64_encoding": True})

    @router.get(API + "/healthcheck")
    def healthcheck() -> JSON:
        return JSON({"is_executor_ready": True, "is_log_client_ready": True})

    @router.get(API + "/auth/identity")
    def identity(request: Request) -> JSON:
        principal: Principal = request.state.principal
        if principal is ANONYMOUS:  # what Chroma's server answers without auth
            return JSON({"user_id": "", "tenant": DEFAULT_TENANT, "databases": [DEFAULT_DATABASE]})
        return JSON(
            {
                "user_id": principal.user_id,
                "tenant": principal.tenant,
                "databases": list(principal.databases),
            }
        )

    @router.api_route(
        "/api/v1/{path:path}", methods=["GET", "POST", "PUT", "DELETE"], include_in_schema=False
    )
    def v1(path: str) -> JSON:
        raise DeprecatedApiError("The v1 API is deprecated. Please use /v2 apis")

    return router
