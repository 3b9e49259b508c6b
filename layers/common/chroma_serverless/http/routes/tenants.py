"""Tenant and database routes (the control plane)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from chroma_serverless.http.responses import JSON
from chroma_serverless.http.routes.paths import API, DATABASE
from chroma_serverless.wire import requests, responses

if TYPE_CHECKING:
    from fastapi.routing import APIRoute

    from chroma_serverless.service.service import Service
    from chroma_serverless.settings import Settings
    from chroma_serverless.types import Principal


def tenant_router(service: Service, settings: Settings, route_class: type[APIRoute]) -> APIRouter:
    router = APIRouter(tags=["tenants and databases"], route_class=route_class)

    @router.post(API + "/tenants")
    def create_tenant(body: requests.CreateTenant) -> JSON:  # authorized as a global action
        service.create_tenant(body.name)
        return JSON({})

    @router.get(API + "/tenants/{tenant}")
    def get_tenant(tenant: str) -> JSON:
        return JSON({"name": service.get_tenant(tenant).name})

    @router.post(API + "/tenants/{tenant}/databases")
    def create_database(tenant: str, body: requests.CreateDatabase) -> JSON:
        service.create_database(tenant, body.name)
        return JSON({})

    @router.get(API + "/tenants/{tenant}/databases")
    def list_databases(
        request: Request, tenant: str, limit: int | None = None, offset: int | None = None
    ) -> JSON:
        principal: Principal = request.state.principal
        found = service.list_databases(tenant, principal, limit, offset)
        return JSON([responses.database(d) for d in found])

    @router.get(DATABASE)
    def get_database(tenant: str, database: str) -> JSON:
        return JSON(responses.database(service.get_database(tenant, database)))

    return router
