"""Record routes (the data plane): add, update, upsert, get, query, delete, count, search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Body

from chroma_serverless.http.responses import JSON
from chroma_serverless.http.routes.paths import COLLECTION
from chroma_serverless.wire import requests, responses

if TYPE_CHECKING:
    from fastapi.routing import APIRoute

    from chroma_serverless.service.service import Service
    from chroma_serverless.settings import Settings


def record_router(service: Service, settings: Settings, route_class: type[APIRoute]) -> APIRouter:
    router = APIRouter(tags=["records"], route_class=route_class)
    max_batch = settings.batch_size

    @router.post(COLLECTION + "/add", status_code=201)
    def add(tenant: str, database: str, collection_id: str, body: requests.Records) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        service.add(collection, body.batch(max_batch, merge_metadata=False))
        return JSON({}, status_code=201)

    @router.post(COLLECTION + "/update")
    def update(tenant: str, database: str, collection_id: str, body: requests.Records) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        service.update(collection, body.batch(max_batch, merge_metadata=True))
        return JSON({})

    @router.post(COLLECTION + "/upsert")
    def upsert(tenant: str, database: str, collection_id: str, body: requests.Records) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        service.upsert(collection, body.batch(max_batch, merge_metadata=True))
        return JSON({})

    @router.post(COLLECTION + "/get")
    def get(
        tenant: str, database: str, collection_id: str, body: Annotated[requests.GetRecords, Body()]
    ) -> JSON:
        collection = service.collection(tenant, database, collection_id, reading=True)
        return JSON(responses.get_result(service.get(collection, body.request()), body.include))

    @router.post(COLLECTION + "/query")
    def query(tenant: str, database: str, collection_id: str, body: requests.QueryRecords) -> JSON:
        collection = service.collection(tenant, database, collection_id, reading=True)
        return JSON(responses.query_result(service.query(collection, body.request()), body.include))

    @router.post(COLLECTION + "/delete")
    def delete(
        tenant: str, database: str, collection_id: str, body: requests.DeleteRecords
    ) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        return JSON({"deleted": service.delete(collection, body.request())})

    @router.get(COLLECTION + "/count")
    def count(tenant: str, database: str, collection_id: str) -> JSON:
        return JSON(
            service.count(service.collection(tenant, database, collection_id, reading=True))
        )

    @router.post(COLLECTION + "/search")
    def search(
        tenant: str, database: str, collection_id: str, body: requests.SearchRecords
    ) -> JSON:
        collection = service.collection(tenant, database, collection_id, reading=True)
        return JSON(responses.search_results(service.search(collection, body.request())))

    return router
