"""The FastAPI application: Chroma's v2 routes, thin, over :class:`Service`; errors mapped once."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from chroma_serverless import __version__, collections, observability, restore, wire
from chroma_serverless.auth import ANONYMOUS, Authenticator, ensure_admin_token
from chroma_serverless.catalog import DEFAULT_DATABASE, DEFAULT_TENANT
from chroma_serverless.errors import (
    BatchSizeExceededError,
    ChromaError,
    DeprecatedApiError,
    InternalError,
    InvalidArgumentError,
    InvalidRequestBodyError,
    MethodNotAllowedError,
    RouteNotFoundError,
)
from chroma_serverless.request_body import JsonRequest
from chroma_serverless.request_telemetry import RequestTelemetry, route_selected

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Coroutine, Sequence

    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from chroma_serverless.catalog import Catalog
    from chroma_serverless.service import Service
    from chroma_serverless.settings import Settings
    from chroma_serverless.types import Database, GetResult, Principal, QueryResult

log = logging.getLogger("chroma_serverless")

API = "/api/v2"
DATABASE = API + "/tenants/{tenant}/databases/{database}"
COLLECTION = DATABASE + "/collections/{collection_id}"

Plane = Literal["control", "data"]
# The control plane (system, tenants, databases, collections) needs only the catalog and runs in
# a small zip function; every route that touches records (including deletes that drop them)
# is data plane and runs in the container image with LanceDB.
PLANES: tuple[Plane, ...] = ("control", "data")


class JSON(Response):
    """orjson with numpy support: embeddings leave as float32 arrays without a Python copy;
    sparse vectors leave in Chroma's tagged form."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS
        return orjson.dumps(content, default=wire.json_default, option=options)


def build_app(settings: Settings, planes: Collection[Plane] = PLANES) -> FastAPI:
    """The app for ``settings``; a Lambda function serves only its ``planes``."""
    return create_app(build_service(settings, planes), planes)


def build_service(settings: Settings, planes: Collection[Plane] = PLANES) -> Service:
    """Storage chosen by ``settings.mode``. The control plane never opens the record store, so
    its Lambda function needs neither LanceDB nor pyarrow."""
    from chroma_serverless.service import Service

    catalog = build_catalog(settings)
    admin_token = settings.admin_token
    if settings.admin_token_secret:
        from chroma_serverless.secrets_manager import read_secret

        admin_token = read_secret(settings, settings.admin_token_secret)
    if admin_token:
        ensure_admin_token(catalog, admin_token)
    # Traced from the first invocation on (X-Ray discards subsegments made during Lambda's INIT).
    catalog = observability.traced(catalog, "catalog")
    records = None
    if "data" in planes:
        from chroma_serverless.records import LanceRecordStore

        records = observability.traced(
            LanceRecordStore(settings.records_root, settings.storage_options(), settings.index),
            "records",
        )
    service = Service(catalog, records, settings)
    if records is not None and settings.maintenance == "background":
        from chroma_serverless.maintenance import BackgroundMaintainer

        service.maintainer = BackgroundMaintainer(service)
    elif records is not None and settings.maintenance == "queue":
        from chroma_serverless.maintenance import SqsMaintainer

        assert settings.maintenance_queue_url, "maintenance=queue needs a queue URL"
        service.maintainer = SqsMaintainer(settings, settings.maintenance_queue_url)
    return service


def build_catalog(settings: Settings) -> Catalog:
    if settings.mode == "aws":
        from chroma_serverless.catalog.dynamodb import DynamoDbCatalog

        return DynamoDbCatalog.from_settings(settings)
    from chroma_serverless.catalog.sqlite import SqliteCatalog

    settings.path.mkdir(parents=True, exist_ok=True)
    return SqliteCatalog(settings.catalog_path)


def create_app(service: Service, planes: Collection[Plane] = PLANES) -> FastAPI:
    app = FastAPI(
        title="chroma-serverless",
        version=__version__,
        description="Chroma's v2 REST API on LanceDB, for AWS Lambda or a laptop.",
        default_response_class=JSON,
        redirect_slashes=False,  # the official client treats a redirect as an error
    )
    app.state.service = service
    route_class = guarded_route(Authenticator(service.catalog, service.settings.auth))
    routers = {"control": control_routers, "data": data_routers}
    routes: list[BaseRoute] = []
    for plane in planes:
        for router in routers[plane](service, route_class):
            routes.extend(router.routes)
            # Flat on the app's router: include_router() keeps each router nested, and FastAPI
            # then walks every level of the tree to match each request.
            app.router.routes.extend(router.routes)
    install_error_handlers(app)
    if service.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(service.settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["chroma-trace-id"],
        )
    app.add_middleware(BodyLimit, limit=service.settings.max_body_bytes)
    app.add_middleware(RequestTelemetry, routes=routes)  # the outermost: sees every request
    return app


class BodyLimit:
    """Answer 413 ``BatchSizeExceededError`` for bodies over the limit (AWS Lambda's 6 MB cap
    would otherwise surface as an opaque gateway error)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= self.limit:
            message = await receive()
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        if size > self.limit:
            error = BatchSizeExceededError(
                f"Request body exceeds the server's limit of {self.limit} bytes; send fewer "
                "records per request (see max_batch_size in /pre-flight-checks)"
            )
            await error_response(error)(scope, receive, send)
            return
        body = b"".join(chunks)

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


# --------------------------------------------------------------------------- errors


def error_response(error: ChromaError) -> JSON:
    return JSON(
        {"error": error.name, "message": error.message},
        status_code=error.status_code,
        headers={"chroma-trace-id": observability.trace_id()},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChromaError)
    async def chroma_error(_: Request, exc: ChromaError) -> JSON:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSON:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = "; ".join(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors)
            return error_response(
                InvalidArgumentError(f"Failed to parse the request body as JSON: {detail}")
            )
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors
        )
        return error_response(
            InvalidRequestBodyError(
                f"Failed to deserialize the JSON body into the target type: {detail}"
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        if exc.status_code == 404:
            error: ChromaError = RouteNotFoundError(
                f"No route for {request.method} {request.url.path}"
            )
        elif exc.status_code == 405:
            error = MethodNotAllowedError(
                f"Method {request.method} is not allowed on {request.url.path}"
            )
        else:
            error = ChromaError(str(exc.detail))
            error.status_code = exc.status_code
        return error_response(error)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSON:
        response = error_response(InternalError("Internal server error"))
        log.error(
            "internal error on %s %s (trace id %s)",
            request.method,
            request.url.path,
            response.headers["chroma-trace-id"],
            exc_info=exc,
        )
        return response


# --------------------------------------------------------------------------- routes


def control_routers(service: Service, route_class: type[APIRoute] = APIRoute) -> list[APIRouter]:
    return [
        system_router(service, route_class),
        tenant_router(service, route_class),
        collection_router(service, route_class),
    ]


def data_routers(service: Service, route_class: type[APIRoute] = APIRoute) -> list[APIRouter]:
    return [lifecycle_router(service, route_class), record_router(service, route_class)]


# The action each route performs (Chroma's AuthzAction names); routes absent here are public.
ROUTE_ACTIONS = {
    "identity": "auth:identity",
    "reset": "system:reset",
    "create_tenant": "tenant:create_tenant",
    "get_tenant": "tenant:get_tenant",
    "create_database": "db:create_database",
    "list_databases": "db:list_databases",
    "get_database": "db:get_database",
    "delete_database": "db:delete_database",
    "create_collection": "db:create_collection",
    "list_collections": "db:list_collections",
    "count_collections": "db:count_collections",
    "get_collection": "collection:get_collection",
    "get_collection_by_id": "collection:get_collection",
    "indexing_status": "collection:get_collection",
    "list_versions": "collection:list_versions",
    "restore_collection": "collection:restore",
    "modify_collection": "collection:update_collection",
    "delete_collection": "collection:delete_collection",
    "fork_collection": "collection:fork_collection",
    "fork_count": "collection:count_forks",
    "add": "collection:add",
    "update": "collection:update",
    "upsert": "collection:upsert",
    "delete": "collection:delete",
    "get": "collection:get",
    "query": "collection:query",
    "count": "collection:count",
    "search": "collection:query",
}
PUBLIC_ROUTES = frozenset({"heartbeat", "version", "pre_flight_checks", "healthcheck", "v1"})


def guarded_route(authenticator: Authenticator) -> type[APIRoute]:
    """A route class that names the route on the request's log keys, then authenticates and
    authorizes from the path before anything else runs (before the body is even parsed): 401
    for no or unknown credentials, 403 outside the scope."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            action = ROUTE_ACTIONS.get(self.name)
            assert action is not None or self.name in PUBLIC_ROUTES, f"{self.name} has no action"

            async def guarded(request: Request) -> Response:
                route_selected(request, self)
                request = JsonRequest(request.scope, request.receive)
                if action is None:
                    return await handler(request)
                principal = ANONYMOUS  # auth off: no credentials to look up, no thread hop
                if authenticator.enabled:
                    principal = await run_in_threadpool(authenticator.authenticate, request.headers)
                params = request.path_params
                authenticator.authorize(
                    principal, action, params.get("tenant"), params.get("database")
                )
                request.state.principal = principal
                return await handler(request)

            return guarded

    return GuardedRoute


def system_router(service: Service, route_class: type[APIRoute]) -> APIRouter:
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
        return JSON(
            {"max_batch_size": service.settings.batch_size, "supports_base64_encoding": True}
        )

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


def tenant_router(service: Service, route_class: type[APIRoute]) -> APIRouter:
    router = APIRouter(tags=["tenants and databases"], route_class=route_class)

    @router.post(API + "/tenants")
    def create_tenant(body: wire.CreateTenant) -> JSON:  # authorized as a global action
        service.create_tenant(body.name)
        return JSON({})

    @router.get(API + "/tenants/{tenant}")
    def get_tenant(tenant: str) -> JSON:
        return JSON({"name": service.get_tenant(tenant).name})

    @router.post(API + "/tenants/{tenant}/databases")
    def create_database(tenant: str, body: wire.CreateDatabase) -> JSON:
        service.create_database(tenant, body.name)
        return JSON({})

    @router.get(API + "/tenants/{tenant}/databases")
    def list_databases(
        request: Request, tenant: str, limit: int | None = None, offset: int | None = None
    ) -> JSON:
        principal: Principal = request.state.principal
        found = service.list_databases(tenant, principal, limit, offset)
        return JSON([_database(d) for d in found])

    @router.get(DATABASE)
    def get_database(tenant: str, database: str) -> JSON:
        return JSON(_database(service.get_database(tenant, database)))

    return router


def collection_router(service: Service, route_class: type[APIRoute]) -> APIRouter:
    router = APIRouter(tags=["collections"], route_class=route_class)

    @router.post(DATABASE + "/collections")
    def create_collection(tenant: str, database: str, body: wire.CreateCollection) -> JSON:
        collection = service.create_collection(
            tenant,
            database,
            body.name,
            body.metadata,
            body.configuration,
            body.get_or_create,
            body.schema_,
        )
        return JSON(collections.to_json(collection))

    @router.get(DATABASE + "/collections")
    def list_collections(
        tenant: str, database: str, limit: int | None = None, offset: int | None = None
    ) -> JSON:
        found = service.list_collections(tenant, database, limit, offset)
        return JSON([collections.to_json(c) for c in found])

    @router.get(DATABASE + "/collections_count")
    def count_collections(tenant: str, database: str) -> JSON:
        return JSON(service.count_collections(tenant, database))

    @router.get(DATABASE + "/collections/by-id/{collection_id}")
    def get_collection_by_id(tenant: str, database: str, collection_id: str) -> JSON:
        collection = service.get_collection_by_id(tenant, database, collection_id)
        return JSON(collections.to_json(collection))

    @router.get(DATABASE + "/collections/{name}")
    def get_collection(tenant: str, database: str, name: str) -> JSON:
        return JSON(collections.to_json(service.get_collection(tenant, database, name)))

    @router.put(COLLECTION)
    def modify_collection(
        tenant: str, database: str, collection_id: str, body: wire.UpdateCollection
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


def lifecycle_router(service: Service, route_class: type[APIRoute]) -> APIRouter:
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
        tenant: str, database: str, collection_id: str, body: wire.ForkCollection
    ) -> JSON:
        fork = service.fork_collection(tenant, database, collection_id, body.new_name)
        return JSON(collections.to_json(fork))

    @router.get(COLLECTION + "/versions")
    def list_versions(tenant: str, database: str, collection_id: str) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        return JSON([restore.point_json(p) for p in service.records.restore_points(collection)])

    @router.post(COLLECTION + "/restore")
    def restore_collection(
        tenant: str, database: str, collection_id: str, body: wire.RestoreCollection
    ) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        restored = restore.restore(service, collection, str(body.to), body.new_name)
        return JSON(restore.to_json(restored))

    @router.get(COLLECTION + "/indexing_status")
    def indexing_status(tenant: str, database: str, collection_id: str) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        indexed, unindexed = service.records.index_status(collection)
        total = indexed + unindexed
        return JSON(
            {
                "num_indexed_ops": indexed,
                "num_unindexed_ops": unindexed,
                "total_ops": total,
                "op_indexing_progress": indexed / total if total else 1.0,
            }
        )

    return router


def record_router(service: Service, route_class: type[APIRoute]) -> APIRouter:
    router = APIRouter(tags=["records"], route_class=route_class)
    max_batch = service.settings.batch_size

    @router.post(COLLECTION + "/add", status_code=201)
    def add(tenant: str, database: str, collection_id: str, body: wire.Records) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        service.add(collection, body.batch(max_batch, merge_metadata=False))
        return JSON({}, status_code=201)

    @router.post(COLLECTION + "/update")
    def update(tenant: str, database: str, collection_id: str, body: wire.Records) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        service.update(collection, body.batch(max_batch, merge_metadata=True))
        return JSON({})

    @router.post(COLLECTION + "/upsert")
    def upsert(tenant: str, database: str, collection_id: str, body: wire.Records) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        service.upsert(collection, body.batch(max_batch, merge_metadata=True))
        return JSON({})

    @router.post(COLLECTION + "/get")
    def get(
        tenant: str, database: str, collection_id: str, body: Annotated[wire.GetRecords, Body()]
    ) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        return JSON(_get_json(service.get(collection, body.request()), body.include))

    @router.post(COLLECTION + "/query")
    def query(tenant: str, database: str, collection_id: str, body: wire.QueryRecords) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        return JSON(_query_json(service.query(collection, body.request()), body.include))

    @router.post(COLLECTION + "/delete")
    def delete(tenant: str, database: str, collection_id: str, body: wire.DeleteRecords) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        return JSON({"deleted": service.delete(collection, body.request())})

    @router.get(COLLECTION + "/count")
    def count(tenant: str, database: str, collection_id: str) -> JSON:
        return JSON(service.count(service.collection(tenant, database, collection_id)))

    @router.post(COLLECTION + "/search")
    def search(tenant: str, database: str, collection_id: str, body: wire.SearchRecords) -> JSON:
        collection = service.collection(tenant, database, collection_id)
        return JSON(wire.search_json(service.search(collection, body.request())))

    return router


def _database(database: Database) -> dict[str, str]:
    return {"id": database.id, "name": database.name, "tenant": database.tenant}


def _get_json(result: GetResult, include: Sequence[str]) -> dict[str, Any]:
    return {
        "ids": result.ids,
        "embeddings": _stack(result.embeddings),
        "documents": result.documents,
        "uris": result.uris,
        "metadatas": result.metadatas,
        "include": include,
    }


def _query_json(result: QueryResult, include: Sequence[str]) -> dict[str, Any]:
    return {
        "ids": result.ids,
        "distances": result.distances,
        "embeddings": None if result.embeddings is None else [_stack(e) for e in result.embeddings],
        "documents": result.documents,
        "uris": result.uris,
        "metadatas": result.metadatas,
        "include": include,
    }


def _stack(vectors: list[Any] | None) -> Any:
    if vectors is None:
        return None
    return np.stack(vectors) if vectors else []
