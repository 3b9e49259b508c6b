"""What each route does, as Chroma's ``AuthzAction`` names (the role tables of ``access.py``
decide who may); routes absent here are public."""

from __future__ import annotations

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
