"""The HTTP surface as plain clients (curl, JS, other languages) see it."""

from __future__ import annotations

import base64
import re
import struct
import uuid
from typing import TYPE_CHECKING, Any

from fastapi.testclient import TestClient

from chroma_serverless.settings import Settings
from tests import factories
from tests.support.app import app_of

if TYPE_CHECKING:
    from pathlib import Path

    from chroma_serverless.service.service import Service


API = "/api/v2"
DB = f"{API}/tenants/default_tenant/databases/default_database"


def create(api: TestClient, name: str = "docs", **body: Any) -> dict[str, Any]:
    response = api.post(f"{DB}/collections", json={"name": name, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def records(api: TestClient, collection: dict[str, Any], op: str, **body: Any) -> Any:
    return api.post(f"{DB}/collections/{collection['id']}/{op}", json=body)


def assert_error(response: Any, status: int, name: str, message: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == name
    assert message in body["message"]
    assert response.headers["content-type"] == "application/json"


def b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


# ------------------------------------------------------------------ system


def test_heartbeat_on_both_paths(api: TestClient) -> None:
    for path in (API, f"{API}/heartbeat"):
        body = api.get(path, headers={"content-type": "application/json"}).json()
        assert isinstance(body["nanosecond heartbeat"], int)


def test_version_is_a_bare_json_string(api: TestClient) -> None:
    assert isinstance(api.get(f"{API}/version").json(), str)


def test_pre_flight_checks_advertise_batch_size_and_base64(api: TestClient) -> None:
    assert api.get(f"{API}/pre-flight-checks").json() == {
        "max_batch_size": 5461,
        "supports_base64_encoding": True,
    }


def test_healthcheck(api: TestClient) -> None:
    assert api.get(f"{API}/healthcheck").json() == {
        "is_executor_ready": True,
        "is_log_client_ready": True,
    }


def test_identity_has_only_the_keys_the_client_accepts(api: TestClient) -> None:
    assert api.get(f"{API}/auth/identity").json() == {
        "user_id": "",
        "tenant": "default_tenant",
        "databases": ["default_database"],
    }


def test_reset_wipes_data_and_keeps_defaults(api: TestClient) -> None:
    create(api)
    assert api.post(f"{API}/reset").json() is True
    assert api.get(f"{DB}/collections_count").json() == 0
    assert api.get(f"{API}/tenants/default_tenant").json() == {"name": "default_tenant"}


def test_reset_is_forbidden_unless_enabled(service: Service, tmp_path: Path) -> None:
    settings = Settings(path=tmp_path, allow_reset=False)
    app = app_of(service, settings)
    with TestClient(app) as api:
        assert_error(api.post(f"{API}/reset"), 403, "ChromaError", "Reset is disabled by config")


def test_v1_is_gone(api: TestClient) -> None:
    assert_error(api.get("/api/v1/heartbeat"), 410, "Unimplemented", "Please use /v2 apis")


def test_unknown_route_and_trailing_slash_are_chroma_404s(api: TestClient) -> None:
    assert_error(api.get(f"{API}/nope"), 404, "NotFoundError")
    response = api.get(f"{API}/heartbeat/", follow_redirects=False)
    assert_error(response, 404, "NotFoundError")


def test_wrong_method_is_a_chroma_error(api: TestClient) -> None:
    assert_error(api.delete(f"{API}/heartbeat"), 405, "ChromaError")


def test_openapi_describes_the_api(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    template = f"{API}/tenants/{{tenant}}/databases/{{database}}/collections/{{collection_id}}"
    assert {f"{template}/{op}" for op in ("add", "get", "query", "delete")} <= set(paths)
    assert api.get("/docs").status_code == 200


# ------------------------------------------------------------------ tenants and databases


def test_tenant_and_database_lifecycle(api: TestClient) -> None:
    assert api.post(f"{API}/tenants", json={"name": "acme"}).json() == {}
    assert_error(api.post(f"{API}/tenants", json={"name": "acme"}), 409, "ChromaError", "exists")
    assert api.post(f"{API}/tenants/acme/databases", json={"name": "main"}).json() == {}
    database = api.get(f"{API}/tenants/acme/databases/main").json()
    assert set(database) == {"id", "name", "tenant"} and database["tenant"] == "acme"
    assert [d["name"] for d in api.get(f"{API}/tenants/acme/databases").json()] == ["main"]
    assert api.delete(f"{API}/tenants/acme/databases/main").json() == {}
    assert_error(api.get(f"{API}/tenants/acme/databases/main"), 404, "NotFoundError")
    assert_error(api.get(f"{API}/tenants/nobody"), 404, "NotFoundError", "Tenant [nobody]")


def test_deleting_a_database_deletes_its_records(api: TestClient, service: Service) -> None:
    api.post(f"{API}/tenants/default_tenant/databases", json={"name": "tmp"})
    path = f"{API}/tenants/default_tenant/databases/tmp/collections"
    collection = api.post(path, json={"name": "inside"}).json()
    api.post(f"{path}/{collection['id']}/add", json={"ids": ["a"], "embeddings": [[1.0]]})
    api.delete(f"{API}/tenants/default_tenant/databases/tmp")
    stale = service.catalog  # the records are gone from storage, not only from the catalog
    assert stale.count_collections("default_tenant", "tmp") == 0

    ghost = factories.collection(
        id=collection["id"], name="inside", database="tmp", configuration={}, dimension=1
    )
    assert service.records.count(ghost) == 0


# ------------------------------------------------------------------ collections


def test_collection_json_has_every_field_the_client_reads(api: TestClient) -> None:
    collection = create(api)
    uuid.UUID(collection["id"])
    assert collection["name"] == "docs"
    assert (collection["tenant"], collection["database"]) == ("default_tenant", "default_database")
    assert collection["metadata"] is None and collection["dimension"] is None
    assert collection["configuration_json"]["hnsw"]["space"] == "l2"


def test_space_resolution_order(api: TestClient) -> None:
    def space(**body: Any) -> str:
        name = f"c{uuid.uuid4().hex[:8]}"
        configuration: dict[str, Any] = create(api, name, **body)["configuration_json"]
        return str(configuration["hnsw"]["space"])

    assert space() == "l2"
    assert space(metadata={"hnsw:space": "cosine"}) == "cosine"
    assert space(configuration={"hnsw": {"space": "ip"}}, metadata={"hnsw:space": "cosine"}) == "ip"
    assert space(configuration={"spann": {"space": "cosine"}}) == "cosine"


def test_invalid_space_is_rejected(api: TestClient) -> None:
    response = api.post(f"{DB}/collections", json={"name": "bad", "metadata": {"hnsw:space": "x"}})
    assert_error(response, 400, "InvalidArgumentError")


def test_invalid_collection_name_is_rejected(api: TestClient) -> None:
    for name in ("e1", "-abc", "a/b/c", "a..b", "x" * 513):
        response = api.post(f"{DB}/collections", json={"name": name})
        assert_error(response, 400, "InvalidArgumentError", "Expected a name containing 3-512")


def test_collection_in_a_missing_database_is_rejected(api: TestClient) -> None:
    response = api.post(
        f"{API}/tenants/default_tenant/databases/nope/collections", json={"name": "abc"}
    )
    assert_error(response, 400, "InvalidArgumentError", "Database [nope] does not exist")


def test_modify_replaces_metadata_and_renames(api: TestClient) -> None:
    collection = create(api, metadata={"a": 1, "b": "x"})
    path = f"{DB}/collections/{collection['id']}"
    assert api.put(path, json={"new_name": "renamed", "new_metadata": {"c": 3}}).json() == {}
    assert api.get(f"{DB}/collections/renamed").json()["metadata"] == {"c": 3}


def test_modify_onto_an_existing_name_conflicts(api: TestClient) -> None:
    create(api, "taken")
    mover = create(api, "mover")
    response = api.put(f"{DB}/collections/{mover['id']}", json={"new_name": "taken"})
    assert_error(response, 409, "ChromaError", "already exists")


def test_collection_slot_is_a_name_for_get_and_a_uuid_for_put(api: TestClient) -> None:
    collection = create(api)
    assert_error(api.get(f"{DB}/collections/{collection['id']}"), 404, "NotFoundError")
    assert api.get(f"{DB}/collections/by-id/{collection['id']}").json()["name"] == "docs"
    response = api.put(f"{DB}/collections/docs", json={"new_name": "x"})
    assert_error(response, 400, "InvalidArgumentError", "not a valid UUIDv4")


def test_collections_are_scoped_to_their_database(api: TestClient) -> None:
    api.post(f"{API}/tenants/default_tenant/databases", json={"name": "other"})
    collection = create(api)
    other = f"{API}/tenants/default_tenant/databases/other/collections/{collection['id']}"
    assert_error(api.post(f"{other}/get", json={}), 404, "NotFoundError")


def test_list_and_count_collections(api: TestClient) -> None:
    for name in ("ccc", "aaa", "bbb"):
        create(api, name)
    listed = api.get(f"{DB}/collections", params={"limit": 2, "offset": 1}).json()
    assert [c["name"] for c in listed] == ["bbb", "ccc"]
    assert api.get(f"{DB}/collections_count").json() == 3
    assert_error(api.get(f"{DB}/collections", params={"limit": "x"}), 422, "ChromaError")


# ------------------------------------------------------------------ records


def test_add_answers_201_with_a_json_body(api: TestClient) -> None:
    collection = create(api)
    response = records(api, collection, "add", ids=["a"], embeddings=[[1.0, 2.0]])
    assert (response.status_code, response.json()) == (201, {})
    assert api.get(f"{DB}/collections/docs").json()["dimension"] == 2


def test_base64_and_float_list_embeddings_store_the_same_vector(api: TestClient) -> None:
    collection = create(api)
    vector = [0.5, -1.25, 3.0]
    records(api, collection, "add", ids=["b64"], embeddings=[b64(vector)])
    records(api, collection, "add", ids=["list"], embeddings=[vector])
    got = records(api, collection, "get", include=["embeddings"]).json()
    assert got["embeddings"] == [vector, vector]


def test_bad_base64_is_rejected(api: TestClient) -> None:
    collection = create(api)
    for bad in ("not base64!", base64.b64encode(b"abc").decode()):
        response = records(api, collection, "add", ids=["a"], embeddings=[bad])
        assert_error(response, 400, "InvalidArgumentError", "base64")


def test_duplicate_ids_in_one_request_are_rejected(api: TestClient) -> None:
    collection = create(api)
    response = records(api, collection, "add", ids=["a", "a"], embeddings=[[1.0], [2.0]])
    assert_error(response, 400, "DuplicateID", "Expected IDs to be unique")
    assert api.get(f"{DB}/collections/{collection['id']}/count").json() == 0


def test_inconsistent_columns_are_rejected(api: TestClient) -> None:
    collection = create(api)
    response = records(api, collection, "add", ids=["a", "b"], embeddings=[[1.0]])
    assert_error(response, 400, "InvalidArgumentError", "Inconsistent number of IDs")


def test_dimension_mismatch_is_rejected_everywhere(api: TestClient) -> None:
    collection = create(api)
    records(api, collection, "add", ids=["a"], embeddings=[[1.0, 2.0]])
    expected = "Collection expecting embedding with dimension of 2, got 3"
    wrong: list[tuple[str, dict[str, Any]]] = [
        ("add", {"ids": ["b"], "embeddings": [[1.0, 2.0, 3.0]]}),
        ("upsert", {"ids": ["b"], "embeddings": [[1.0, 2.0, 3.0]]}),
        ("update", {"ids": ["a"], "embeddings": [[1.0, 2.0, 3.0]]}),
        ("query", {"query_embeddings": [[1.0, 2.0, 3.0]]}),
    ]
    for op, body in wrong:
        assert_error(records(api, collection, op, **body), 400, "InvalidArgumentError", expected)


def test_mixed_dimensions_in_one_batch_are_rejected(api: TestClient) -> None:
    collection = create(api)
    response = records(api, collection, "add", ids=["a", "b"], embeddings=[[1.0], [1.0, 2.0]])
    assert_error(response, 400, "InvalidArgumentError", "same dimension")


def test_non_finite_embeddings_are_rejected(api: TestClient) -> None:
    collection = create(api)
    body = '{"ids": ["a"], "embeddings": [[NaN, 1.0]]}'
    response = api.post(
        f"{DB}/collections/{collection['id']}/add",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "InvalidArgumentError", "finite")


def test_metadata_values_are_validated(api: TestClient) -> None:
    collection = create(api)
    invalid: list[dict[str, Any]] = [
        {"nested": {"a": 1}},
        {"mixed": [1, "a"]},
        {"empty": []},
        {"#reserved": 1},
        {"huge": 2**64},
        {"null_on_add": None},
    ]
    for metadata in invalid:
        response = records(
            api, collection, "add", ids=["a"], embeddings=[[1.0]], metadatas=[metadata]
        )
        assert_error(response, 400, "InvalidArgumentError")
    assert api.get(f"{DB}/collections/{collection['id']}/count").json() == 0


def test_get_result_shape(api: TestClient) -> None:
    collection = create(api)
    records(api, collection, "add", ids=["a"], embeddings=[[1.0]], metadatas=[{}])
    got = records(api, collection, "get", include=["metadatas"]).json()
    assert got == {
        "ids": ["a"],
        "embeddings": None,
        "documents": None,
        "uris": None,
        "metadatas": [None],
        "include": ["metadatas"],
    }


def test_get_rejects_distances_and_negative_paging(api: TestClient) -> None:
    collection = create(api)
    assert_error(
        records(api, collection, "get", include=["distances"]), 400, "InvalidArgumentError"
    )
    assert_error(records(api, collection, "get", limit=-1), 400, "InvalidArgumentError")
    assert_error(records(api, collection, "get", include=["bogus"]), 422, "ChromaError")


def test_query_result_shape(api: TestClient) -> None:
    collection = create(api)
    records(
        api, collection, "add", ids=["a", "b"], embeddings=[[0.0], [2.0]], documents=["x", None]
    )
    got = records(api, collection, "query", query_embeddings=[[0.5], [2.0]], n_results=5).json()
    assert got["ids"] == [["a", "b"], ["b", "a"]]
    assert got["distances"] == [[0.25, 2.25], [0.0, 4.0]]
    assert got["documents"] == [["x", None], [None, "x"]]
    assert got["embeddings"] is None and got["uris"] is None


def test_query_on_an_empty_collection(api: TestClient) -> None:
    collection = create(api)
    got = records(api, collection, "query", query_embeddings=[[1.0, 2.0]], n_results=3).json()
    assert got["ids"] == [[]] and got["distances"] == [[]] and got["metadatas"] == [[]]


def test_query_rejects_non_positive_n_results(api: TestClient) -> None:
    collection = create(api)
    response = records(api, collection, "query", query_embeddings=[[1.0]], n_results=0)
    assert_error(response, 400, "InvalidArgumentError", "n_results")


def test_delete_returns_the_number_deleted(api: TestClient) -> None:
    collection = create(api)
    records(api, collection, "add", ids=["a", "b", "c"], embeddings=[[1.0], [2.0], [3.0]])
    # by ids alone: the ids asked for, as Chroma's server counts them (contract §12)
    assert records(api, collection, "delete", ids=["a", "ghost"]).json() == {"deleted": 2}
    assert records(api, collection, "delete", where={"k": {"$ne": 1}}, limit=1).json() == {
        "deleted": 1
    }
    assert_error(records(api, collection, "delete"), 400, "InvalidArgumentError")


def test_count_is_a_bare_integer(api: TestClient) -> None:
    collection = create(api)
    records(api, collection, "add", ids=["a"], embeddings=[[1.0]])
    count = api.get(f"{DB}/collections/{collection['id']}/count?read_level=index_and_wal")
    assert count.json() == 1


def test_bad_filters_are_invalid_arguments(api: TestClient) -> None:
    collection = create(api)
    wheres: list[dict[str, Any]] = [
        {"a": 1, "b": 2},
        {"a": {"$gt": "x"}},
        {"a": {"$in": []}},
        {"$regex": "x"},
    ]
    for where in wheres:
        response = records(api, collection, "get", where=where)
        assert_error(response, 400, "InvalidArgumentError")
    deep: dict[str, Any] = {"a": 1}
    for _ in range(100):
        deep = {"$and": [deep]}
    assert_error(records(api, collection, "get", where=deep), 400, "InvalidArgumentError")


def test_unknown_and_malformed_collection_ids(api: TestClient) -> None:
    missing = str(uuid.uuid4())
    response = api.post(f"{DB}/collections/{missing}/get", json={})
    assert_error(response, 404, "NotFoundError", f"Collection [{missing}] does not exist")
    response = api.post(f"{DB}/collections/not-a-uuid/get", json={})
    assert_error(response, 400, "InvalidArgumentError", "not a valid UUIDv4")


def test_unparseable_json_and_wrong_shapes(api: TestClient) -> None:
    collection = create(api)
    path = f"{DB}/collections/{collection['id']}/add"
    response = api.post(path, content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 400, "InvalidArgumentError", "Failed to parse the request body as JSON")
    response = api.post(path, json={"embeddings": [[1.0]]})
    assert_error(response, 422, "ChromaError", "Failed to deserialize the JSON body")


def test_search_without_searches_is_422(api: TestClient) -> None:
    collection = create(api)
    assert_error(records(api, collection, "search"), 422, "ChromaError")


def test_search_knobs_map_to_the_index(api: TestClient) -> None:
    # As on Chroma's single-node server, a SPANN request is served by HNSW keeping only its space.
    spann = create(api, "spann", configuration={"spann": {"space": "cosine", "search_nprobe": 64}})
    assert spann["configuration_json"]["spann"] is None
    assert spann["configuration_json"]["hnsw"]["space"] == "cosine"
    assert spann["configuration_json"]["hnsw"]["ef_search"] == 100
    hnsw = create(api, "hnsw", configuration={"hnsw": {"ef_search": 50}})
    path = f"{DB}/collections/{hnsw['id']}"
    api.put(path, json={"new_configuration": {"hnsw": {"ef_search": 400}}})
    assert (
        api.get(f"{DB}/collections/hnsw").json()["configuration_json"]["hnsw"]["ef_search"] == 400
    )


def test_the_api_docs_load_their_scripts_from_this_server(api: TestClient) -> None:
    # GIVEN the Swagger UI page, WHEN its scripts and styles are fetched, THEN each comes from
    # this server (no CDN: the page works offline)
    page = api.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assets = re.findall(r"""(?:src|href)=["'](/[^"']+)""", page.text)
    assert len(assets) >= 2 and all(a.startswith("/docs/assets/") for a in assets)
    for asset in assets:
        fetched = api.get(asset)
        assert fetched.status_code == 200 and len(fetched.content) > 1000
    assert "SwaggerUIBundle" in api.get("/docs/assets/swagger-ui-bundle.js").text
    assert api.get("/openapi.json").json()["info"]["title"] == "chroma-serverless"


def test_a_busy_collection_answers_429_with_retry_after() -> None:
    """A read that waited its limit for another instance's fold: the client may retry."""
    import orjson

    from chroma_serverless.errors import BusyError
    from chroma_serverless.http.errors import error_response

    response = error_response(BusyError("Collection is busy; retry"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert orjson.loads(response.body) == {
        "error": "RateLimitError",
        "message": "Collection is busy; retry",
    }
