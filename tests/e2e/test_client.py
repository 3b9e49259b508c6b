"""The official chromadb 1.5.9 client drives the real server through the whole workflow.

Every test talks to ``chroma-serverless run`` over HTTP, either through ``chromadb.HttpClient`` /
``chromadb.AdminClient`` or, where the client would hide the server's answer, with raw ``httpx``.
Expected behaviour is the contract in ``/work/shared/docs/chroma-contract.md``.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

import chromadb
import httpx
import numpy as np
import orjson
import pytest
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import (
    ChromaError,
    DuplicateIDError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
)

from tests.factories import f32
from tests.support.server import admin_client, chroma_client

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Space
    from chromadb.base_types import Where

    from tests.support.server import Server

pytestmark = pytest.mark.e2e

DATABASE_PATH = "/api/v2/tenants/default_tenant/databases/default_database"
SPACES = ("l2", "cosine", "ip")


# ------------------------------------------------------------------------------------ helpers


def raw(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


def sent_bodies(client: ClientAPI, path_suffix: str) -> list[dict[str, Any]]:
    """Record the JSON bodies the client sends to URLs ending in ``path_suffix``."""
    bodies: list[dict[str, Any]] = []

    def hook(request: httpx.Request) -> None:
        if request.url.path.endswith(path_suffix):
            bodies.append(orjson.loads(request.content))

    cast("Any", client)._server._session.event_hooks["request"].append(hook)
    return bodies


def as_f32(vectors: Any) -> np.ndarray:
    return np.asarray(vectors, dtype=np.float32)


@pytest.fixture
def small(client: ClientAPI) -> Collection:
    """Three records with embeddings, documents, metadata and URIs, in insertion order a, b, c."""
    collection = client.create_collection("small")
    collection.add(
        ids=["a", "b", "c"],
        embeddings=f32([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
        documents=["doc a", "doc b", "doc c"],
        metadatas=[{"k": 1, "s": "x"}, {"k": 2}, {"k": 3, "s": "z"}],
        uris=["uri-a", "uri-b", "uri-c"],
    )
    return collection


# ------------------------------------------------------------------------ 1. client, system


def test_client_construction_sees_default_identity_tenant_and_database(
    client: ClientAPI,
) -> None:
    identity = client.get_user_identity()
    assert identity.user_id == ""
    assert identity.tenant == "default_tenant"
    assert identity.databases == ["default_database"]
    assert cast("Any", client).tenant == "default_tenant"
    assert cast("Any", client).database == "default_database"


@pytest.mark.usefixtures("close_sessions_on_stop")
def test_client_construction_on_missing_tenant_raises_not_found(server: Server) -> None:
    with pytest.raises(NotFoundError):
        chromadb.HttpClient(host=server.host, port=server.port, tenant="no_such_tenant")


@pytest.mark.usefixtures("close_sessions_on_stop")
def test_client_construction_on_missing_database_raises_not_found(server: Server) -> None:
    with pytest.raises(NotFoundError):
        chromadb.HttpClient(host=server.host, port=server.port, database="no_such_database")


def test_heartbeat_returns_server_time_in_nanoseconds(client: ClientAPI) -> None:
    before = time.time_ns()
    beat = client.heartbeat()
    assert isinstance(beat, int)
    assert abs(beat - before) < 60 * 10**9


def test_get_version_returns_a_version_string(client: ClientAPI) -> None:
    version = client.get_version()
    assert isinstance(version, str)
    assert version.count(".") >= 1


def test_get_max_batch_size_comes_from_pre_flight(client: ClientAPI, server: Server) -> None:
    with raw(server) as http:
        pre_flight = http.get("/api/v2/pre-flight-checks").json()
    assert pre_flight["supports_base64_encoding"] is True
    assert client.get_max_batch_size() == pre_flight["max_batch_size"]
    assert client.get_max_batch_size() > 0


def test_reset_wipes_everything_and_keeps_default_tenant_and_database(
    client: ClientAPI, server: Server
) -> None:
    client.create_collection("doomed").add(ids=["a"], embeddings=f32([[1.0, 2.0]]))
    admin = admin_client(server)
    admin.create_tenant("doomed_tenant")

    assert client.reset() is True

    assert client.list_collections() == []
    assert client.count_collections() == 0
    with pytest.raises(NotFoundError):
        admin.get_tenant("doomed_tenant")
    fresh = chroma_client(server)
    assert fresh.heartbeat() > 0
    assert fresh.create_collection("doomed").count() == 0


# ------------------------------------------------------------------ 2. tenants, databases


def test_admin_creates_and_gets_tenant(client: ClientAPI, server: Server) -> None:
    admin = admin_client(server)
    admin.create_tenant("acme")
    assert admin.get_tenant("acme")["name"] == "acme"


def test_admin_duplicate_tenant_already_exists(client: ClientAPI, server: Server) -> None:
    admin = admin_client(server)
    admin.create_tenant("acme")
    with pytest.raises(ChromaError, match="already exists"):
        admin.create_tenant("acme")


def test_admin_missing_tenant_raises_not_found(client: ClientAPI, server: Server) -> None:
    with pytest.raises(NotFoundError):
        admin_client(server).get_tenant("nobody")


def test_admin_creates_and_gets_database(client: ClientAPI, server: Server) -> None:
    admin = admin_client(server)
    admin.create_tenant("acme")
    admin.create_database("sales", tenant="acme")
    database = admin.get_database("sales", tenant="acme")
    assert database["name"] == "sales"
    assert database["tenant"] == "acme"
    uuid.UUID(str(database["id"]))


def test_admin_duplicate_database_already_exists(client: ClientAPI, server: Server) -> None:
    admin = admin_client(server)
    admin.create_database("sales")
    with pytest.raises(ChromaError, match="already exists"):
        admin.create_database("sales")


def test_admin_missing_database_raises_not_found(client: ClientAPI, server: Server) -> None:
    with pytest.raises(NotFoundError):
        admin_client(server).get_database("nothing")


def test_admin_lists_databases_with_limit_and_offset(client: ClientAPI, server: Server) -> None:
    admin = admin_client(server)
    admin.create_tenant("acme")
    created = [f"db{i}" for i in range(5)]
    for name in created:
        admin.create_database(name, tenant="acme")

    everything = [d["name"] for d in admin.list_databases(tenant="acme")]
    assert set(created) <= set(everything)
    assert all(d["tenant"] == "acme" for d in admin.list_databases(tenant="acme"))

    pages = [
        [d["name"] for d in admin.list_databases(limit=2, offset=offset, tenant="acme")]
        for offset in range(0, len(everything) + 2, 2)
    ]
    assert all(len(page) <= 2 for page in pages)
    assert [name for page in pages for name in page] == everything
    assert [d["name"] for d in admin.list_databases(offset=1, tenant="acme")] == everything[1:]


def test_admin_deletes_database(client: ClientAPI, server: Server) -> None:
    admin = admin_client(server)
    admin.create_database("temp")
    admin.delete_database("temp")
    with pytest.raises(NotFoundError):
        admin.get_database("temp")
    assert "temp" not in [d["name"] for d in admin.list_databases()]


def test_admin_delete_missing_database_raises_not_found(client: ClientAPI, server: Server) -> None:
    with pytest.raises(NotFoundError):
        admin_client(server).delete_database("never_created")


def test_client_on_another_tenant_and_database_is_isolated(
    client: ClientAPI, server: Server
) -> None:
    admin = admin_client(server)
    admin.create_tenant("acme")
    admin.create_database("sales", tenant="acme")
    other = chromadb.HttpClient(
        host=server.host,
        port=server.port,
        tenant="acme",
        database="sales",
        settings=ChromaSettings(anonymized_telemetry=False),
    )
    collection = other.create_collection("shared_name")
    collection.add(ids=["x"], embeddings=f32([[1.0, 2.0]]))

    assert collection.tenant == "acme"
    assert collection.database == "sales"
    assert [c.name for c in other.list_collections()] == ["shared_name"]
    assert client.list_collections() == []
    with pytest.raises(NotFoundError):
        client.get_collection("shared_name")
    same_name = client.create_collection("shared_name")
    assert same_name.id != collection.id
    assert same_name.count() == 0
    assert other.get_collection("shared_name").count() == 1


def test_deleting_a_database_deletes_its_collections(client: ClientAPI, server: Server) -> None:
    admin = admin_client(server)
    admin.create_database("temp")
    scoped = chromadb.HttpClient(
        host=server.host,
        port=server.port,
        database="temp",
        settings=ChromaSettings(anonymized_telemetry=False),
    )
    collection = scoped.create_collection("inside")
    collection.add(ids=["x"], embeddings=f32([[1.0, 2.0]]))
    admin.delete_database("temp")
    admin.create_database("temp")
    assert scoped.list_collections() == []
    with pytest.raises(NotFoundError):
        collection.count()


# ------------------------------------------------------------------------- 3. collections


def test_create_collection_without_metadata_has_none_metadata(client: ClientAPI) -> None:
    created = client.create_collection("plain")
    assert created.name == "plain"
    assert created.metadata is None
    assert client.get_collection("plain").metadata is None
    assert [c.metadata for c in client.list_collections()] == [None]


def test_create_collection_with_metadata_round_trips_it(client: ClientAPI) -> None:
    metadata = {"owner": "ann", "version": 3, "ratio": 2.0, "public": True}
    created = client.create_collection("described", metadata=metadata)
    assert created.metadata == metadata
    fetched = client.get_collection("described").metadata
    assert fetched == metadata
    assert fetched is not None
    assert type(fetched["version"]) is int
    assert type(fetched["ratio"]) is float
    assert type(fetched["public"]) is bool


def test_get_or_create_returns_existing_collection_unchanged(client: ClientAPI) -> None:
    created = client.create_collection("kept", metadata={"a": 1})
    created.add(ids=["x"], embeddings=f32([[1.0, 2.0]]))
    again = client.get_or_create_collection("kept", metadata={"b": 2})
    assert again.id == created.id
    assert again.metadata == {"a": 1}
    assert again.count() == 1
    assert client.count_collections() == 1


def test_get_or_create_creates_missing_collection(client: ClientAPI) -> None:
    made = client.get_or_create_collection("fresh", metadata={"b": 2})
    assert made.metadata == {"b": 2}
    assert client.get_collection("fresh").id == made.id


def test_get_collection_by_name(client: ClientAPI) -> None:
    created = client.create_collection("named")
    fetched = client.get_collection("named")
    assert fetched.id == created.id
    assert fetched.name == "named"
    assert fetched.tenant == "default_tenant"
    assert fetched.database == "default_database"


def test_get_collection_by_id_with_the_client(client: ClientAPI) -> None:
    created = client.create_collection("by_id", metadata={"m": 1})
    fetched = client.get_collection_by_id(created.id)
    assert fetched.name == "by_id"
    assert fetched.metadata == {"m": 1}


def test_get_collection_by_id_raw_route(client: ClientAPI, server: Server) -> None:
    created = client.create_collection("by_id")
    with raw(server) as http:
        found = http.get(f"{DATABASE_PATH}/collections/by-id/{created.id}")
        missing = http.get(f"{DATABASE_PATH}/collections/by-id/{uuid.uuid4()}")
    assert found.status_code == 200
    body = found.json()
    assert body["id"] == str(created.id)
    assert body["name"] == "by_id"
    assert body["metadata"] is None
    assert isinstance(body["configuration_json"], dict)
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFoundError"


def test_get_collection_by_unknown_id_raises_not_found(client: ClientAPI) -> None:
    with pytest.raises(NotFoundError):
        client.get_collection_by_id(uuid.uuid4())


def test_list_collections_with_limit_and_offset(client: ClientAPI) -> None:
    names = {f"coll{i}" for i in range(5)}
    for name in sorted(names):
        client.create_collection(name)

    everything = [c.name for c in client.list_collections()]
    assert sorted(everything) == sorted(names)
    pages = [
        [c.name for c in client.list_collections(limit=2, offset=offset)] for offset in (0, 2, 4, 6)
    ]
    assert [len(page) for page in pages] == [2, 2, 1, 0]
    assert [name for page in pages for name in page] == everything
    assert [c.name for c in client.list_collections(offset=3)] == everything[3:]


def test_count_collections(client: ClientAPI) -> None:
    assert client.count_collections() == 0
    for name in ("one", "two", "three"):
        client.create_collection(name)
    assert client.count_collections() == 3
    client.delete_collection("two")
    assert client.count_collections() == 2


def test_modify_collection_name_keeps_id_metadata_and_records(client: ClientAPI) -> None:
    collection = client.create_collection("old_name", metadata={"a": 1})
    collection.add(ids=["x"], embeddings=f32([[1.0, 2.0]]))
    collection.modify(name="new_name")

    assert collection.name == "new_name"
    renamed = client.get_collection("new_name")
    assert renamed.id == collection.id
    assert renamed.metadata == {"a": 1}
    assert renamed.count() == 1
    with pytest.raises(NotFoundError):
        client.get_collection("old_name")


def test_modify_collection_metadata_replaces_it(client: ClientAPI) -> None:
    collection = client.create_collection("meta", metadata={"a": 1, "b": "x"})
    collection.modify(metadata={"c": 3})
    assert collection.metadata == {"c": 3}
    assert client.get_collection("meta").metadata == {"c": 3}


def test_modify_collection_onto_existing_name_fails(client: ClientAPI) -> None:
    first = client.create_collection("first")
    second = client.create_collection("second")
    with pytest.raises(ChromaError, match="already exists") as raised:
        second.modify(name="first")
    assert not isinstance(raised.value, InternalError)
    assert client.get_collection("first").id == first.id
    assert client.get_collection("second").id == second.id


def test_delete_collection(client: ClientAPI) -> None:
    collection = client.create_collection("gone")
    collection.add(ids=["x"], embeddings=f32([[1.0, 2.0]]))
    client.delete_collection("gone")
    with pytest.raises(NotFoundError):
        client.get_collection("gone")
    with pytest.raises(NotFoundError):
        collection.count()
    assert client.create_collection("gone").count() == 0


def test_missing_collection_raises_not_found(client: ClientAPI) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        client.get_collection("missing")
    with pytest.raises(NotFoundError):
        client.delete_collection("missing")


def test_duplicate_create_collection_already_exists(client: ClientAPI) -> None:
    client.create_collection("twice")
    with pytest.raises(ChromaError, match="already exists"):
        client.create_collection("twice")


@pytest.mark.parametrize("name", ["ab", "has space", "-leading", "trailing_", "a/b/c", "é" * 4])
def test_invalid_collection_name_raises_invalid_argument(client: ClientAPI, name: str) -> None:
    with pytest.raises(InvalidArgumentError):
        client.create_collection(name)
    assert client.count_collections() == 0


# ---------------------------------------------------------------------------- 4. records


def test_add_then_get_by_ids_returns_storage_order(small: Collection) -> None:
    result = small.get(ids=["c", "missing", "a"])
    assert result["ids"] == ["a", "c"]
    assert result["documents"] == ["doc a", "doc c"]
    assert result["metadatas"] == [{"k": 1, "s": "x"}, {"k": 3, "s": "z"}]


def test_get_all_with_default_include(small: Collection) -> None:
    result = small.get()
    assert result["ids"] == ["a", "b", "c"]
    assert result["documents"] == ["doc a", "doc b", "doc c"]
    assert result["metadatas"] == [{"k": 1, "s": "x"}, {"k": 2}, {"k": 3, "s": "z"}]
    assert result["embeddings"] is None
    assert result["uris"] is None


def test_get_with_every_include(small: Collection) -> None:
    result = small.get(include=["embeddings", "documents", "metadatas", "uris"])
    assert result["ids"] == ["a", "b", "c"]
    np.testing.assert_array_equal(as_f32(result["embeddings"]), np.eye(3, dtype=np.float32))
    assert result["documents"] == ["doc a", "doc b", "doc c"]
    assert result["metadatas"] == [{"k": 1, "s": "x"}, {"k": 2}, {"k": 3, "s": "z"}]
    assert result["uris"] == ["uri-a", "uri-b", "uri-c"]


def test_get_with_only_embeddings_and_uris(small: Collection) -> None:
    result = small.get(ids=["b"], include=["embeddings", "uris"])
    np.testing.assert_array_equal(as_f32(result["embeddings"]), [[0.0, 1.0, 0.0]])
    assert result["uris"] == ["uri-b"]
    assert result["documents"] is None
    assert result["metadatas"] is None


def test_get_with_empty_include_returns_only_ids(small: Collection) -> None:
    result = small.get(include=[])
    assert result["ids"] == ["a", "b", "c"]
    assert result["documents"] is None
    assert result["metadatas"] is None
    assert result["embeddings"] is None
    assert result["uris"] is None


def test_get_order_stays_insertion_order_after_update_and_upsert(small: Collection) -> None:
    small.update(ids=["a"], metadatas=[{"k": 10}])
    small.upsert(ids=["b", "d"], embeddings=f32([[0.0, 2.0, 0.0], [1.0, 1.0, 1.0]]))
    assert small.get()["ids"] == ["a", "b", "c", "d"]
    assert small.get(limit=2, offset=1)["ids"] == ["b", "c"]
    assert small.peek(1)["ids"] == ["a"]


def test_get_with_limit_and_offset(small: Collection) -> None:
    assert small.get(limit=2)["ids"] == ["a", "b"]
    assert small.get(limit=2, offset=1)["ids"] == ["b", "c"]
    assert small.get(offset=2)["ids"] == ["c"]
    assert small.get(limit=5, offset=3)["ids"] == []


def test_get_of_unknown_ids_is_empty(small: Collection) -> None:
    result = small.get(ids=["nope"])
    assert result["ids"] == []
    assert result["documents"] == []
    assert result["metadatas"] == []


def test_records_without_metadata_or_document_come_back_as_none(client: ClientAPI) -> None:
    collection = client.create_collection("sparse")
    collection.add(ids=["a", "b"], embeddings=f32([[1.0, 2.0], [3.0, 4.0]]))
    result = collection.get(include=["documents", "metadatas", "uris"])
    # The client's hints type each list as holding no None; a record without one holds None.
    assert result["documents"] == [None, None]  # type: ignore[comparison-overlap]
    assert result["metadatas"] == [None, None]  # type: ignore[comparison-overlap]
    assert result["uris"] == [None, None]  # type: ignore[comparison-overlap]


def test_add_of_existing_id_is_ignored(small: Collection) -> None:
    small.add(
        ids=["a", "d"],
        embeddings=f32([[9.0, 9.0, 9.0], [0.5, 0.5, 0.5]]),
        documents=["replaced?", "doc d"],
        metadatas=[{"k": 99}, {"k": 4}],
    )
    assert small.count() == 4
    a = small.get(ids=["a"], include=["embeddings", "documents", "metadatas", "uris"])
    np.testing.assert_array_equal(as_f32(a["embeddings"]), [[1.0, 0.0, 0.0]])
    assert a["documents"] == ["doc a"]
    assert a["metadatas"] == [{"k": 1, "s": "x"}]
    assert a["uris"] == ["uri-a"]
    assert small.get(ids=["d"])["documents"] == ["doc d"]


def test_update_merges_metadata(small: Collection) -> None:
    small.update(ids=["a"], metadatas=[{"s": "changed", "new": True}])
    assert small.get(ids=["a"])["metadatas"] == [{"k": 1, "s": "changed", "new": True}]


def test_update_with_none_value_removes_the_key(small: Collection) -> None:
    small.update(ids=["a"], metadatas=[{"s": None}])
    assert small.get(ids=["a"])["metadatas"] == [{"k": 1}]


def test_update_removing_every_key_leaves_no_metadata(small: Collection) -> None:
    small.update(ids=["b"], metadatas=[{"k": None}])
    # The client's hints type metadatas as holding no None; a record without metadata holds None.
    assert small.get(ids=["b"])["metadatas"] == [None]  # type: ignore[comparison-overlap]


def test_update_metadata_only_keeps_document_embedding_and_uri(small: Collection) -> None:
    small.update(ids=["c"], metadatas=[{"k": 30}])
    c = small.get(ids=["c"], include=["embeddings", "documents", "metadatas", "uris"])
    np.testing.assert_array_equal(as_f32(c["embeddings"]), [[0.0, 0.0, 1.0]])
    assert c["documents"] == ["doc c"]
    assert c["metadatas"] == [{"k": 30, "s": "z"}]
    assert c["uris"] == ["uri-c"]


def test_update_replaces_document(small: Collection) -> None:
    small.update(ids=["b"], documents=["new doc b"], embeddings=f32([[0.0, 1.0, 0.0]]))
    b = small.get(ids=["b"], include=["documents", "metadatas", "uris"])
    assert b["documents"] == ["new doc b"]
    assert b["metadatas"] == [{"k": 2}]
    assert b["uris"] == ["uri-b"]


def test_update_replaces_embedding_only(small: Collection) -> None:
    small.update(ids=["a"], embeddings=f32([[0.25, 0.5, 0.75]]))
    a = small.get(ids=["a"], include=["embeddings", "documents", "metadatas"])
    np.testing.assert_array_equal(as_f32(a["embeddings"]), [[0.25, 0.5, 0.75]])
    assert a["documents"] == ["doc a"]
    assert a["metadatas"] == [{"k": 1, "s": "x"}]
    nearest = small.query(query_embeddings=f32([[0.25, 0.5, 0.75]]), n_results=1, include=[])
    assert nearest["ids"] == [["a"]]


def test_update_of_missing_id_is_ignored(small: Collection) -> None:
    small.update(ids=["ghost"], metadatas=[{"k": 0}], embeddings=f32([[1.0, 1.0, 1.0]]))
    assert small.count() == 3
    assert small.get(ids=["ghost"])["ids"] == []


def test_upsert_adds_new_and_merges_existing(small: Collection) -> None:
    small.upsert(
        ids=["a", "z"],
        embeddings=f32([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]),
        metadatas=[{"s": "upserted"}, {"k": 26}],
    )
    assert small.count() == 4
    result = small.get(ids=["a", "z"], include=["embeddings", "documents", "metadatas", "uris"])
    assert result["ids"] == ["a", "z"]
    np.testing.assert_array_equal(as_f32(result["embeddings"]), [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    assert result["metadatas"] == [{"k": 1, "s": "upserted"}, {"k": 26}]
    assert result["documents"] == ["doc a", None]
    assert result["uris"] == ["uri-a", None]


def test_delete_by_ids(small: Collection) -> None:
    assert small.delete(ids=["a", "c"])["deleted"] == 2
    assert small.get()["ids"] == ["b"]
    assert small.count() == 1


def test_delete_by_where(small: Collection) -> None:
    assert small.delete(where=cast("Where", {"k": {"$gte": 2}}))["deleted"] == 2
    assert small.get()["ids"] == ["a"]


def test_delete_by_where_document(small: Collection) -> None:
    assert small.delete(where_document={"$contains": "doc b"})["deleted"] == 1
    assert small.get()["ids"] == ["a", "c"]


def test_delete_by_ids_and_where_deletes_the_intersection(small: Collection) -> None:
    small.delete(ids=["a", "b"], where=cast("Where", {"k": {"$gt": 1}}))
    assert small.get()["ids"] == ["a", "c"]


def test_delete_with_limit_deletes_at_most_limit_records(small: Collection) -> None:
    result = small.delete(where=cast("Where", {"k": {"$gte": 1}}), limit=2)
    assert result["deleted"] == 2
    assert small.count() == 1
    assert small.delete(where=cast("Where", {"k": {"$gte": 1}}), limit=0)["deleted"] == 0
    assert small.count() == 1


def test_delete_matching_nothing_succeeds(small: Collection) -> None:
    small.delete(where={"k": 42})
    small.delete(ids=["never"])
    assert small.count() == 3


def test_count(client: ClientAPI) -> None:
    collection = client.create_collection("counted")
    assert collection.count() == 0
    collection.add(
        ids=[str(i) for i in range(7)], embeddings=f32([[float(i), 1.0] for i in range(7)])
    )
    assert collection.count() == 7
    collection.delete(ids=["0", "1"])
    assert collection.count() == 5


def test_peek_returns_first_records_with_embeddings(small: Collection) -> None:
    peeked = small.peek(2)
    assert peeked["ids"] == ["a", "b"]
    np.testing.assert_array_equal(as_f32(peeked["embeddings"]), np.eye(3)[:2])
    assert peeked["documents"] == ["doc a", "doc b"]
    assert peeked["metadatas"] == [{"k": 1, "s": "x"}, {"k": 2}]


def test_dimension_is_fixed_by_first_add_and_survives_deleting_everything(
    client: ClientAPI,
) -> None:
    collection = client.create_collection("dims")
    collection.add(ids=["a"], embeddings=f32([[1.0, 2.0, 3.0]]))
    collection.delete(ids=["a"])
    with pytest.raises(InvalidArgumentError, match="dimension"):
        collection.add(ids=["b"], embeddings=f32([[1.0, 2.0]]))


def test_metadata_value_types_round_trip_exactly(client: ClientAPI) -> None:
    metadata: dict[str, Any] = {
        "int": 2,
        "negative": -7,
        "big": 2**53,
        "float": 2.0,
        "fraction": 0.1,
        "true": True,
        "false": False,
        "str": "text",
        "empty_str": "",
        "str_list": ["a", "b"],
        "int_list": [1, 2, 3],
        "float_list": [1.0, 2.5],
        "bool_list": [True, False],
    }
    collection = client.create_collection("typed")
    collection.add(ids=["r"], embeddings=f32([[1.0, 2.0]]), metadatas=[metadata])

    by_id = collection.get(ids=["r"])["metadatas"]
    queried = collection.query(query_embeddings=f32([[1.0, 2.0]]), n_results=1)["metadatas"]
    assert by_id is not None and queried is not None
    for got in (by_id[0], queried[0][0]):
        assert got == metadata
        for key, value in metadata.items():
            assert type(got[key]) is type(value), key
            if isinstance(value, list):
                stored = got[key]
                assert isinstance(stored, list)
                assert [type(x) for x in stored] == [type(x) for x in value], key


# ------------------------------------------------------------------ 5. embedding encodings


@pytest.mark.parametrize("base64_encoding", [True, False], ids=["base64", "float-lists"])
def test_embeddings_round_trip_in_both_wire_encodings(
    client: ClientAPI, base64_encoding: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = cast("Any", client)._server
    if not base64_encoding:
        monkeypatch.setattr(
            api,
            "pre_flight_checks",
            {"max_batch_size": client.get_max_batch_size(), "supports_base64_encoding": False},
        )
    assert api.supports_base64_encoding() is base64_encoding
    rng = np.random.default_rng(5)
    # float64 on purpose: the client takes any array (its hints say int32 or float32 only) and
    # sends float64 values as floats in JSON, float32 bytes in base64.
    vectors = rng.standard_normal((6, 8)) * 100
    collection = client.create_collection("encodings")
    sent = {op: sent_bodies(client, "/" + op) for op in ("add", "upsert", "update")}

    collection.add(ids=["a", "b", "c", "d"], embeddings=vectors[:4])  # type: ignore[arg-type]
    collection.upsert(ids=["c", "e"], embeddings=vectors[4:6])  # type: ignore[arg-type]
    collection.update(ids=["a"], embeddings=vectors[5:6])  # type: ignore[arg-type]

    for op, bodies in sent.items():
        assert len(bodies) == 1, op
        embeddings = bodies[0]["embeddings"]
        if base64_encoding:
            assert all(isinstance(e, str) for e in embeddings), op
            decoded = np.frombuffer(base64.b64decode(embeddings[0]), dtype="<f4")
            assert decoded.shape == (8,)
        else:
            assert all(isinstance(e, list) for e in embeddings), op

    expected = dict(
        zip(
            "abcde",
            as_f32([vectors[5], vectors[1], vectors[4], vectors[3], vectors[5]]),
            strict=True,
        )
    )
    got = collection.get(include=["embeddings"])
    assert sorted(got["ids"]) == ["a", "b", "c", "d", "e"]
    for record_id, vector in zip(got["ids"], as_f32(got["embeddings"]), strict=True):
        np.testing.assert_array_equal(vector, expected[record_id])
    queried = collection.query(
        query_embeddings=vectors[1:2],  # type: ignore[arg-type]
        n_results=1,
        include=["embeddings"],
    )
    assert queried["ids"] == [["b"]]
    assert queried["embeddings"] is not None
    np.testing.assert_array_equal(as_f32(queried["embeddings"][0]), [expected["b"]])


def test_raw_float_list_and_base64_adds_store_the_same_vectors(
    client: ClientAPI, server: Server
) -> None:
    collection = client.create_collection("raw_encodings")
    vector = np.array([0.1, -2.5, 3.75, 1e-3], dtype=np.float32)
    route = f"{DATABASE_PATH}/collections/{collection.id}/add"
    empty = {"metadatas": None, "documents": None, "uris": None}
    with raw(server) as http:
        as_list = http.post(route, json={"ids": ["list"], "embeddings": [vector.tolist()], **empty})
        as_b64 = http.post(
            route,
            json={
                "ids": ["b64"],
                "embeddings": [base64.b64encode(vector.astype("<f4").tobytes()).decode()],
                **empty,
            },
        )
    assert as_list.status_code == 201, as_list.text
    assert as_b64.status_code == 201, as_b64.text
    got = collection.get(include=["embeddings"])
    assert got["ids"] == ["list", "b64"]
    np.testing.assert_array_equal(as_f32(got["embeddings"]), [vector, vector])


# ---------------------------------------------------------------------------- 6. filters

FILTER_RECORDS: dict[str, tuple[dict[str, Any] | None, str | None]] = {
    "a": (
        {
            "n": 1,
            "f": 1.5,
            "s": "red",
            "flag": True,
            "tags": ["x", "y"],
            "nums": [1, 2],
            "fl": [0.5, 2.5],
            "bl": [True, False],
        },
        "hello world",
    ),
    "b": (
        {"n": 2, "f": 2.0, "s": "blue", "flag": False, "tags": ["y"], "nums": [3], "bl": [False]},
        "Hello again",
    ),
    "c": ({"n": 3, "f": 3.5, "s": "green", "tags": ["z"], "v": 1}, "goodbye world"),
    "d": ({"n": 2.0, "s": "red", "v": True}, None),
    "e": (None, "lorem ipsum"),
}


@pytest.fixture
def filterable(client: ClientAPI) -> Collection:
    collection = client.create_collection("filters")
    ids = list(FILTER_RECORDS)
    collection.add(
        ids=ids,
        embeddings=f32([[float(i), 1.0] for i in range(len(ids))]),
        # A record may have no metadata or document (None), which the client's hints omit.
        metadatas=[FILTER_RECORDS[i][0] for i in ids],  # type: ignore[misc]
        documents=[FILTER_RECORDS[i][1] for i in ids],  # type: ignore[misc]
    )
    return collection


WHERE_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("shorthand-eq", {"s": "red"}, {"a", "d"}),
    ("eq", {"s": {"$eq": "red"}}, {"a", "d"}),
    ("ne-includes-missing-key", {"s": {"$ne": "red"}}, {"b", "c", "e"}),
    ("gt", {"n": {"$gt": 2}}, {"c"}),
    ("gte", {"n": {"$gte": 2}}, {"b", "c", "d"}),
    ("lt", {"n": {"$lt": 2}}, {"a"}),
    ("lte", {"n": {"$lte": 2}}, {"a", "b", "d"}),
    ("gt-float", {"f": {"$gt": 1.5}}, {"b", "c"}),
    ("lte-float-vs-int", {"f": {"$lte": 2}}, {"a", "b"}),
    ("in", {"s": {"$in": ["red", "green"]}}, {"a", "c", "d"}),
    ("in-numbers", {"n": {"$in": [1, 3]}}, {"a", "c"}),
    ("nin-includes-missing-key", {"s": {"$nin": ["red", "green"]}}, {"b", "e"}),
    ("and", {"$and": [{"s": "red"}, {"n": {"$gte": 2}}]}, {"d"}),
    ("or", {"$or": [{"s": "blue"}, {"n": 3}]}, {"b", "c"}),
    (
        "nested-and-or",
        {"$and": [{"$or": [{"s": "red"}, {"s": "blue"}]}, {"n": {"$lt": 2}}]},
        {"a"},
    ),
    ("contains-str-array", {"tags": {"$contains": "y"}}, {"a", "b"}),
    ("contains-int-array", {"nums": {"$contains": 3}}, {"b"}),
    ("contains-float-array", {"fl": {"$contains": 2.5}}, {"a"}),
    ("contains-bool-array", {"bl": {"$contains": True}}, {"a"}),
    ("contains-on-scalar-never-matches", {"s": {"$contains": "red"}}, set()),
    ("not-contains-includes-missing-key", {"tags": {"$not_contains": "y"}}, {"c", "d", "e"}),
    ("document-contains", {"#document": {"$contains": "world"}}, {"a", "c"}),
    ("document-not-contains", {"#document": {"$not_contains": "world"}}, {"b", "d", "e"}),
    ("int-matches-float", {"n": 2}, {"b", "d"}),
    ("float-matches-int", {"n": 2.0}, {"b", "d"}),
    ("int-matches-stored-float", {"f": {"$eq": 2}}, {"b"}),
    ("int-1-never-matches-true", {"v": 1}, {"c"}),
    ("true-never-matches-int-1", {"v": True}, {"d"}),
    ("bool-eq", {"flag": {"$eq": True}}, {"a"}),
    ("bool-false", {"flag": False}, {"b"}),
    ("bool-ne", {"flag": {"$ne": True}}, {"b", "c", "d", "e"}),
    ("in-ints-never-matches-bool", {"v": {"$in": [1, 5]}}, {"c"}),
    ("nin-ints-keeps-bool", {"v": {"$nin": [1]}}, {"a", "b", "d", "e"}),
    ("gt-on-missing-key", {"v": {"$gt": 0}}, {"c"}),
]


@pytest.mark.parametrize(
    ("where", "expected"), [c[1:] for c in WHERE_CASES], ids=[c[0] for c in WHERE_CASES]
)
def test_where_operator(filterable: Collection, where: Any, expected: set[str]) -> None:
    assert set(filterable.get(where=where)["ids"]) == expected


WHERE_DOCUMENT_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("contains", {"$contains": "world"}, {"a", "c"}),
    ("contains-is-case-sensitive", {"$contains": "hello"}, {"a"}),
    ("not-contains-includes-null-document", {"$not_contains": "world"}, {"b", "d", "e"}),
    ("regex", {"$regex": "^[Hh]ello"}, {"a", "b"}),
    ("regex-end-anchor", {"$regex": "world$"}, {"a", "c"}),
    ("not-regex-includes-null-document", {"$not_regex": "^[Hh]ello"}, {"c", "d", "e"}),
    ("and", {"$and": [{"$contains": "world"}, {"$not_contains": "good"}]}, {"a"}),
    ("or", {"$or": [{"$contains": "again"}, {"$regex": "ips.m$"}]}, {"b", "e"}),
]


@pytest.mark.parametrize(
    ("where_document", "expected"),
    [c[1:] for c in WHERE_DOCUMENT_CASES],
    ids=[c[0] for c in WHERE_DOCUMENT_CASES],
)
def test_where_document_operator(
    filterable: Collection, where_document: Any, expected: set[str]
) -> None:
    assert set(filterable.get(where_document=where_document)["ids"]) == expected


def test_ids_where_and_where_document_combine_as_intersection(filterable: Collection) -> None:
    result = filterable.get(
        ids=["a", "b", "c", "d"],
        where=cast("Where", {"n": {"$gte": 1}}),
        where_document={"$contains": "world"},
    )
    assert result["ids"] == ["a", "c"]


def test_filtered_get_honours_limit_and_offset(filterable: Collection) -> None:
    assert filterable.get(where=cast("Where", {"n": {"$gte": 1}}), limit=2, offset=1)["ids"] == [
        "b",
        "c",
    ]


def test_where_rejected_by_the_client_is_a_value_error(filterable: Collection) -> None:
    with pytest.raises(ValueError):
        filterable.get(where=cast("Where", {"s": {"$gt": "red"}}))
    with pytest.raises(ValueError):
        filterable.get(where={"s": "red", "n": 1})


def test_invalid_regex_is_invalid_argument(filterable: Collection) -> None:
    with pytest.raises(InvalidArgumentError):
        filterable.get(where_document={"$regex": "(unclosed"})


@pytest.mark.parametrize(
    "where",
    [
        {"n": {"$bogus": 1}},
        {"s": {"$gt": "red"}},
        {"n": {"$in": []}},
        {"s": "red", "n": 1},
        {"$and": "not a list"},
    ],
    ids=["unknown-operator", "gt-string", "empty-in", "two-keys", "and-not-a-list"],
)
def test_invalid_where_reaching_the_server_is_invalid_argument(
    filterable: Collection, server: Server, where: dict[str, Any]
) -> None:
    with raw(server) as http:
        response = http.post(
            f"{DATABASE_PATH}/collections/{filterable.id}/get",
            json={
                "ids": None,
                "where": where,
                "where_document": None,
                "limit": None,
                "offset": None,
                "include": ["metadatas"],
            },
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "InvalidArgumentError"
    assert "chroma-trace-id" in response.headers


# ------------------------------------------------------------------------------ 7. query

DIM = 16
N_RECORDS = 200
N_RESULTS = 5


def brute_force(space: str, data: np.ndarray, query: np.ndarray) -> np.ndarray:
    data64, query64 = data.astype(np.float64), query.astype(np.float64)
    if space == "l2":
        return np.asarray(((data64 - query64) ** 2).sum(axis=1))
    if space == "cosine":
        norms = np.linalg.norm(data64, axis=1) * np.linalg.norm(query64)
        return np.asarray(1.0 - data64 @ query64 / norms)
    return np.asarray(1.0 - data64 @ query64)


def assert_matches_brute_force(
    result: Any, space: str, ids: list[str], data: np.ndarray, queries: np.ndarray, k: int
) -> None:
    assert len(result["ids"]) == len(queries)
    for row, query in enumerate(queries):
        distances = brute_force(space, data, query)
        order = np.argsort(distances, kind="stable")[:k]
        assert result["ids"][row] == [ids[i] for i in order], (space, row)
        np.testing.assert_allclose(result["distances"][row], distances[order], rtol=1e-4, atol=1e-4)
        assert result["distances"][row] == sorted(result["distances"][row])


@pytest.fixture(scope="module")
def dataset() -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    data = rng.standard_normal((N_RECORDS, DIM)).astype(np.float32)
    queries = rng.standard_normal((4, DIM)).astype(np.float32)
    return [f"id{i:03d}" for i in range(N_RECORDS)], data, queries


def vector_collection(
    client: ClientAPI,
    dataset: tuple[list[str], np.ndarray, np.ndarray],
    **create: Any,
) -> Collection:
    ids, data, _ = dataset
    collection = client.create_collection("vectors", **create)
    collection.add(
        ids=ids,
        embeddings=data,
        documents=[f"document {i} {'even' if i % 2 == 0 else 'odd'}" for i in range(len(ids))],
        metadatas=[{"i": i, "group": i % 3} for i in range(len(ids))],
    )
    return collection


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("how", ["configuration", "metadata"])
def test_query_matches_brute_force_in_every_space(
    client: ClientAPI,
    dataset: tuple[list[str], np.ndarray, np.ndarray],
    space: str,
    how: str,
) -> None:
    ids, data, queries = dataset
    if how == "configuration":
        collection = vector_collection(client, dataset, configuration={"hnsw": {"space": space}})
    else:
        collection = vector_collection(client, dataset, metadata={"hnsw:space": space})
        assert collection.metadata == {"hnsw:space": space}
    assert collection.configuration_json["hnsw"]["space"] == space
    result = collection.query(query_embeddings=queries, n_results=N_RESULTS)
    assert_matches_brute_force(result, space, ids, data, queries, N_RESULTS)


def test_query_defaults_to_squared_l2(
    client: ClientAPI, dataset: tuple[list[str], np.ndarray, np.ndarray]
) -> None:
    ids, data, queries = dataset
    collection = vector_collection(client, dataset, embedding_function=None)
    result = collection.query(query_embeddings=queries, n_results=N_RESULTS)
    assert_matches_brute_force(result, "l2", ids, data, queries, N_RESULTS)


def test_query_distances_on_small_known_vectors(client: ClientAPI) -> None:
    expected: dict[Space, list[float]] = {
        "l2": [1.0, 8.0, 25.0],
        "cosine": [0.0, 1.0, 2.0],
        "ip": [-1.0, 1.0, 7.0],
    }
    for space, distances in expected.items():
        collection = client.create_collection(
            f"known_{space}", configuration={"hnsw": {"space": space}}
        )
        collection.add(ids=["p", "q", "r"], embeddings=f32([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]))
        result = collection.query(
            query_embeddings=f32([[2.0, 0.0]]), n_results=3, include=["distances"]
        )
        assert result["ids"] == [["p", "q", "r"]], space
        assert result["distances"] is not None
        np.testing.assert_allclose(result["distances"][0], distances, atol=1e-6)


def test_query_with_where_filter_matches_brute_force_on_subset(
    client: ClientAPI, dataset: tuple[list[str], np.ndarray, np.ndarray]
) -> None:
    ids, data, queries = dataset
    collection = vector_collection(client, dataset)
    keep = [i for i in range(len(ids)) if i % 3 == 1 and i >= 40]
    result = collection.query(
        query_embeddings=queries,
        n_results=N_RESULTS,
        where=cast("Where", {"$and": [{"group": 1}, {"i": {"$gte": 40}}]}),
    )
    assert_matches_brute_force(result, "l2", [ids[i] for i in keep], data[keep], queries, N_RESULTS)
    assert result["metadatas"] is not None
    assert all(m["group"] == 1 for row in result["metadatas"] for m in row)


def test_query_with_where_document_matches_brute_force_on_subset(
    client: ClientAPI, dataset: tuple[list[str], np.ndarray, np.ndarray]
) -> None:
    ids, data, queries = dataset
    collection = vector_collection(client, dataset)
    keep = [i for i in range(len(ids)) if i % 2 == 1]
    result = collection.query(
        query_embeddings=queries, n_results=N_RESULTS, where_document={"$contains": "odd"}
    )
    assert_matches_brute_force(result, "l2", [ids[i] for i in keep], data[keep], queries, N_RESULTS)


def test_query_with_ids_filter_matches_brute_force_on_subset(
    client: ClientAPI, dataset: tuple[list[str], np.ndarray, np.ndarray]
) -> None:
    ids, data, queries = dataset
    collection = vector_collection(client, dataset)
    keep = list(range(0, N_RECORDS, 7))
    result = collection.query(
        query_embeddings=queries, n_results=N_RESULTS, ids=[ids[i] for i in keep]
    )
    assert_matches_brute_force(result, "l2", [ids[i] for i in keep], data[keep], queries, N_RESULTS)


def test_query_with_every_include(small: Collection) -> None:
    result = small.query(
        query_embeddings=f32([[1.0, 0.1, 0.0]]),
        n_results=2,
        include=["embeddings", "documents", "metadatas", "distances", "uris"],
    )
    assert result["ids"] == [["a", "b"]]
    assert result["embeddings"] is not None and result["distances"] is not None
    np.testing.assert_array_equal(as_f32(result["embeddings"][0]), np.eye(3)[:2])
    assert result["documents"] == [["doc a", "doc b"]]
    assert result["metadatas"] == [[{"k": 1, "s": "x"}, {"k": 2}]]
    assert result["uris"] == [["uri-a", "uri-b"]]
    np.testing.assert_allclose(result["distances"][0], [0.01, 1.81], rtol=1e-5)


def test_query_default_include_is_documents_metadatas_distances(small: Collection) -> None:
    result = small.query(query_embeddings=f32([[0.0, 0.0, 1.0]]), n_results=1)
    assert result["ids"] == [["c"]]
    assert result["documents"] == [["doc c"]]
    assert result["metadatas"] == [[{"k": 3, "s": "z"}]]
    assert result["distances"] == [[0.0]]
    assert result["embeddings"] is None
    assert result["uris"] is None


def test_query_with_empty_include_returns_only_ids(small: Collection) -> None:
    result = small.query(query_embeddings=f32([[0.0, 1.0, 0.0]]), n_results=1, include=[])
    assert result["ids"] == [["b"]]
    for key in ("documents", "metadatas", "distances", "embeddings", "uris"):
        assert result[key] is None, key


def test_query_with_more_results_than_records_returns_all(small: Collection) -> None:
    result = small.query(query_embeddings=f32([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), n_results=50)
    assert [len(row) for row in result["ids"]] == [3, 3]
    assert result["ids"][0][0] == "a"
    assert result["ids"][1][0] == "c"


def test_query_on_empty_collection_returns_empty_inner_lists(client: ClientAPI) -> None:
    collection = client.create_collection("empty")
    result = collection.query(query_embeddings=f32([[1.0, 2.0], [3.0, 4.0]]), n_results=3)
    assert result["ids"] == [[], []]
    assert result["distances"] == [[], []]
    assert result["documents"] == [[], []]
    assert result["metadatas"] == [[], []]


def test_query_with_filter_matching_nothing_returns_empty_inner_list(small: Collection) -> None:
    result = small.query(query_embeddings=f32([[1.0, 0.0, 0.0]]), n_results=2, where={"k": 99})
    assert result["ids"] == [[]]
    assert result["distances"] == [[]]


# ----------------------------------------------------------------------------- 8. errors


def test_record_operations_on_deleted_collection_raise_not_found(
    client: ClientAPI, small: Collection
) -> None:
    client.delete_collection(small.name)
    with pytest.raises(NotFoundError):
        small.add(ids=["x"], embeddings=f32([[1.0, 2.0, 3.0]]))
    with pytest.raises(NotFoundError):
        small.get()
    with pytest.raises(NotFoundError):
        small.query(query_embeddings=f32([[1.0, 2.0, 3.0]]), n_results=1)


def test_dimension_mismatch_on_add_is_invalid_argument(small: Collection) -> None:
    with pytest.raises(InvalidArgumentError, match="dimension"):
        small.add(ids=["x"], embeddings=f32([[1.0, 2.0]]))
    assert small.count() == 3


def test_dimension_mismatch_on_upsert_and_update_is_invalid_argument(small: Collection) -> None:
    with pytest.raises(InvalidArgumentError, match="dimension"):
        small.upsert(ids=["a"], embeddings=f32([[1.0, 2.0, 3.0, 4.0]]))
    with pytest.raises(InvalidArgumentError, match="dimension"):
        small.update(ids=["a"], embeddings=f32([[1.0]]))
    a = small.get(ids=["a"], include=["embeddings"])
    np.testing.assert_array_equal(as_f32(a["embeddings"]), [[1.0, 0.0, 0.0]])


def test_dimension_mismatch_on_query_is_invalid_argument(small: Collection) -> None:
    with pytest.raises(InvalidArgumentError, match="dimension"):
        small.query(query_embeddings=f32([[1.0, 2.0]]), n_results=1)


def test_duplicate_ids_in_one_add_are_rejected_by_the_client(small: Collection) -> None:
    with pytest.raises(DuplicateIDError):
        small.add(ids=["x", "x"], embeddings=f32([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert small.count() == 3


def test_duplicate_ids_in_one_add_are_rejected_by_the_server(
    small: Collection, server: Server
) -> None:
    with raw(server) as http:
        response = http.post(
            f"{DATABASE_PATH}/collections/{small.id}/add",
            json={
                "ids": ["x", "x"],
                "embeddings": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                "metadatas": None,
                "documents": None,
                "uris": None,
            },
        )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "DuplicateID"
    assert isinstance(body["message"], str)
    assert body["message"]
    assert "chroma-trace-id" in response.headers
    assert small.count() == 3


def test_server_errors_carry_chroma_error_bodies(client: ClientAPI, server: Server) -> None:
    create = {"name": "dup", "metadata": None, "configuration": None, "schema": None}
    with raw(server) as http:
        missing = http.get(f"{DATABASE_PATH}/collections/missing")
        first = http.post(f"{DATABASE_PATH}/collections", json={**create, "get_or_create": False})
        again = http.post(f"{DATABASE_PATH}/collections", json={**create, "get_or_create": False})
        get_or_create = http.post(
            f"{DATABASE_PATH}/collections", json={**create, "get_or_create": True}
        )
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "NotFoundError",
        "message": "Collection [missing] does not exist",
    }
    assert first.status_code == 200
    assert again.status_code == 409
    assert again.json()["error"] in ("ChromaError", "UniqueConstraintError")
    assert "already exists" in again.json()["message"]
    assert "chroma-trace-id" in again.headers
    assert get_or_create.status_code == 200
    assert get_or_create.json()["id"] == first.json()["id"]
