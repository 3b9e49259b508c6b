"""Data-plane routes outside the record API: the ones that drop, fork, restore or inspect
records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from chroma_serverless.http.responses import JSON
from chroma_serverless.http.routes.paths import API, COLLECTION, DATABASE
from chroma_serverless.wire import requests, responses

if TYPE_CHECKING:
    from fastapi.routing import APIRoute

    from chroma_serverless.service.service import Service
    from chroma_serverless.settings import Settings


def lifecycle_router(
    service: Service, settings: Settings, route_class: type[APIRoute]
) -> APIRouter:
    """Data-plane routes outside the record API: the ones that drop, fork or inspect records."""
    router = APIRouter(tags=["lifecycle"], route_class=route_class)

    @router.post(API + "/reset")
    def reset() -> JSON:
        return JSON(service.reset())

    @router.delete(DATABASE)
    def delete_database(tenant: str, database: str) -> JSON:
        service.delete_database(tenant, database)
        return JSON({})

    @router.delete(DATABASE + "/collections/{name}")
    def delete_collection(tenant: str, database: str, name: str) -> JSON:
        service.delete_collection(tenant, database, name)
        return JSON({})

    @router.post(COLLECTION + "/fork")
    def fork_collection(
        tenant: str, database: str, collection_id: str, body: requests.ForkCollection
    ) -> JSON:
        fork = service.fork_collection(tenant, database, collection_id, body.new_name)
        return JSON(responses.collection(fork))

    @router.get(COLLECTION + "/versions")
    def list_versions(tenant: str, database: str, collection_id: str) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        return JSON([responses.restore_point(p) for p in service.restore_points(collection)])

    @router.post(COLLECTION + "/restore")
    def restore_collection(
        tenant: str, database: str, collection_id: str, body: requests.RestoreCollection
    ) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        return JSON(responses.restored(service.restore(collection, str(body.to), body.new_name)))

    @router.get(COLLECTION + "/indexing_status")
    def indexing_status(tenant: str, database: str, collection_id: str) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        return JSON(responses.indexing_status(*service.indexing_status(collection)))

    return router
