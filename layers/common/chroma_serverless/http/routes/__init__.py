"""The routes of each plane, one router per resource, each route parsing its body, calling one
method of the service and answering."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chroma_serverless.http.routes.collections import collection_router
from chroma_serverless.http.routes.lifecycle import lifecycle_router
from chroma_serverless.http.routes.records import record_router
from chroma_serverless.http.routes.system import system_router
from chroma_serverless.http.routes.tenants import tenant_router

if TYPE_CHECKING:
    from fastapi import APIRouter
    from fastapi.routing import APIRoute

    from chroma_serverless.service.service import Service
    from chroma_serverless.settings import Settings


def control_routers(
    service: Service, settings: Settings, route_class: type[APIRoute]
) -> list[APIRouter]:
    return [
        system_router(service, settings, route_class),
        tenant_router(service, settings, route_class),
        collection_router(service, settings, route_class),
    ]


def data_routers(
    service: Service, settings: Settings, route_class: type[APIRoute]
) -> list[APIRouter]:
    return [
        lifecycle_router(service, settings, route_class),
        record_router(service, settings, route_class),
    ]
