"""Collection routes (the control plane): create, list, count, get, modify, fork count."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from chroma_serverless.http.responses import JSON
from chroma_serverless.http.routes.paths import COLLECTION, DATABASE
from chroma_serverless.wire import requests, responses

if TYPE_CHECKING:
    from fastapi.routing import APIRoute

    from chroma_serverless.service.service import Service
    from chroma_serverless.settings import Settings


def collection_router(
    service: Service, settings: Settings, route_class: type[APIRoute]
) -> APIRouter:
    router = APIRouter(tags=["collections"], route_class=route_class)

    @router.post(DATABASE + "/collections")
    def create_collection(tenant: str, database: str, body: requests.CreateCollection) -> JSON:
        collection = service.create_collection(
            tenant,
            database,
            body.name,
            body.metadata,
            body.configuration,
            body.get_or_create,
            body.schema_,
        )
        return JSON(responses.collection(collection))

    @router.get(DATABASE + "/collections")
    def list_collections(
        tenant: str, database: str, limit: int | None = None, offset: int | None = None
    ) -> JSON:
        found = service.list_collections(tenant, database, limit, offset)
        return JSON([responses.collection(c) for c in found])

    @router.get(DATABASE + "/collections_count")
    def count_collections(tenant: str, database: str) -> JSON:
        return JSON(service.count_collections(tenant, database))

    @router.get(DATABASE + "/collections/by-id/{collection_id}")
    def get_collection_by_id(tenant: str, database: str, collection_id: str) -> JSON:
        collection = service.get_collection_by_id(tenant, database, collection_id)
        return JSON(responses.collection(collection))

    @router.get(DATABASE + "/collections/{name}")
    def get_collection(tenant: str, database: str, name: str) -> JSON:
        return JSON(responses.collection(service.get_collection(tenant, database, name)))

    @router.put(COLLECTION)
    def modify_collection(
        tenant: str, database: str, collection_id: str, body: requests.UpdateCollection
    ) -> JSON:
        service.modify_collection(
            tenant,
            database,
            collection_id,
            body.new_name,
            body.new_metadata,
            body.new_configuration,
        )
        return JSON({})

    @router.get(COLLECTION + "/fork_count")
    def fork_count(tenant: str, database: str, collection_id: str) -> JSON:
        return JSON({"count": service.fork_count(tenant, database, collection_id)})

    return router
