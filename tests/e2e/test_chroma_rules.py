"""Chroma's input rules, through the official client (sync and async) against both modes: empty
collection metadata, tenant and database names, a query naming missing ids, and out-of-range
paging values. Each answer is the one Chroma's server gives (contract §11), or a 400 where Chroma's
server answers 500."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
from chromadb.api.async_client import AsyncAdminClient
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import InvalidArgumentError, NotFoundError

from tests.factories import f32
from tests.support.server import admin_client, run_async

if TYPE_CHECKING:
    from chromadb.api import AsyncClientAPI, ClientAPI

    from tests.support.server import Server

pytestmark = pytest.mark.e2e

DB = "/api/v2/tenants/default_tenant/databases/default_database"
HUGE = 2**64  # past SQLite's and Arrow's 64-bit integers
PAST_U32 = 2**32  # the first value Chroma's server (u32) refuses
EMPTY_METADATA = "Metadata cannot be empty"


async def async_admin(server: Server, action: str, *args: Any, **kwargs: Any) -> Any:
    """One call of the official ``AsyncAdminClient``, its HTTP connections closed after."""
    admin = AsyncAdminClient(
        ChromaSettings(
            chroma_api_impl="chromadb.api.async_fastapi.AsyncFastAPI",
            chroma_server_host=server.host,
            chroma_server_http_port=server.port,
            anonymized_telemetry=False,
        )
    )
    try:
        return await getattr(admin, action)(*args, **kwargs)
    finally:
        await cast("Any", admin)._server._cleanup()
        SharedSystemClient._identifier_to_system.pop(cast("Any", admin)._identifier, None)


# ------------------------------------------------------------- empty collection metadata


def test_create_collection_with_empty_metadata_is_invalid(client: ClientAPI) -> None:
    with pytest.raises(InvalidArgumentError, match=f"metadata: {EMPTY_METADATA}"):
        client.create_collection("docs", metadata={})
    assert client.list_collections() == []


def test_modify_collection_with_empty_metadata_is_invalid_and_keeps_it(
    client: ClientAPI, server: Server
) -> None:
    # The Python client refuses ``modify(metadata={})`` itself; the JS client and curl send it.
    collection = client.create_collection("docs", metadata={"team": "search"})
    with httpx.Client(base_url=server.url) as http:
        response = http.put(f"{DB}/collections/{collection.id}", json={"new_metadata": {}})
    assert response.status_code == 400
    assert response.json() == {
        "error": "InvalidArgumentError",
        "message": f"Validation error: new_metadata: {EMPTY_METADATA}",
    }
    assert client.get_collection("docs").metadata == {"team": "search"}


def test_empty_metadata_is_invalid_with_the_async_client(client: ClientAPI, server: Server) -> None:
    async def workflow(aclient: AsyncClientAPI) -> None:
        with pytest.raises(InvalidArgumentError, match=f"metadata: {EMPTY_METADATA}"):
            await aclient.create_collection("docs", metadata={})
        assert await aclient.list_collections() == []

    run_async(server, workflow)


# ------------------------------------------------------------- tenant and database names

BAD_DATABASE_NAMES = ["a", "ab", "-abc", "abc_", "a b c", "a..b", "x" * 513]


@pytest.mark.parametrize("name", BAD_DATABASE_NAMES)
def test_database_names_follow_chromas_rule(client: ClientAPI, server: Server, name: str) -> None:
    admin = admin_client(server)
    with pytest.raises(InvalidArgumentError, match="3-512 characters from"):
        admin.create_database(name)
    assert [d["name"] for d in admin.list_databases()] == ["default_database"]


@pytest.mark.parametrize("name", ["abc", "a.b-c_9", "x" * 512])
def test_database_names_chroma_accepts_work(client: ClientAPI, server: Server, name: str) -> None:
    admin = admin_client(server)
    admin.create_database(name)
    assert admin.get_database(name)["name"] == name


@pytest.mark.parametrize("name", ["a", "ab", "..."])
def test_short_tenant_names_are_invalid(client: ClientAPI, server: Server, name: str) -> None:
    admin = admin_client(server)
    with pytest.raises(InvalidArgumentError, match="tenant name"):
        admin.create_tenant(name)
    with pytest.raises(NotFoundError):
        admin.get_tenant(name)


def test_name_rules_hold_for_the_async_admin_client(client: ClientAPI, server: Server) -> None:
    async def workflow(_: AsyncClientAPI) -> None:
        with pytest.raises(InvalidArgumentError, match="3-512 characters from"):
            await async_admin(server, "create_database", "a")
        with pytest.raises(InvalidArgumentError, match="tenant name"):
            await async_admin(server, "create_tenant", "t")
        await async_admin(server, "create_tenant", "acme")
        await async_admin(server, "create_database", "sales", tenant="acme")
        database = await async_admin(server, "get_database", "sales", tenant="acme")
        assert database["name"] == "sales"

    run_async(server, workflow)


# ------------------------------------------------------------- query naming missing ids


def test_query_with_ids_naming_a_missing_record_is_invalid(client: ClientAPI) -> None:
    collection = client.create_collection("docs")
    collection.add(ids=["a", "b", "c"], embeddings=f32([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(InvalidArgumentError, match=r"Error finding id.*: gone, lost"):
        collection.query(query_embeddings=f32([[1.0, 0.0]]), ids=["a", "gone", "lost"])

    found = collection.query(query_embeddings=f32([[1.0, 0.0]]), ids=["b", "c"], n_results=5)
    assert found["ids"] == [["c", "b"]]

    collection.delete(ids=["c"])
    with pytest.raises(InvalidArgumentError, match="Error finding id.*: c"):
        collection.query(query_embeddings=f32([[1.0, 0.0]]), ids=["b", "c"])


def test_query_with_ids_on_an_empty_collection_is_invalid(client: ClientAPI) -> None:
    collection = client.create_collection("docs")
    with pytest.raises(InvalidArgumentError, match="Error finding id.*: a"):
        collection.query(query_embeddings=f32([[1.0, 0.0]]), ids=["a"])


def test_query_with_missing_ids_is_invalid_with_the_async_client(
    client: ClientAPI, server: Server
) -> None:
    async def workflow(aclient: AsyncClientAPI) -> list[list[str]]:
        collection = await aclient.create_collection("docs")
        await collection.add(ids=["a", "b"], embeddings=f32([[1.0, 0.0], [0.0, 1.0]]))
        with pytest.raises(InvalidArgumentError, match="Error finding id.*: nope"):
            await collection.query(query_embeddings=f32([[1.0, 0.0]]), ids=["nope"])
        result = await collection.query(query_embeddings=f32([[1.0, 0.0]]), ids=["b"])
        return result["ids"]

    assert run_async(server, workflow) == [["b"]]


# ------------------------------------------------------------- out-of-range paging values


@pytest.mark.parametrize("value", [HUGE, PAST_U32, -1])
@pytest.mark.parametrize("param", ["limit", "offset"])
def test_out_of_range_paging_on_list_routes_is_invalid(
    client: ClientAPI, server: Server, param: str, value: int
) -> None:
    client.create_collection("docs")
    with httpx.Client(base_url=server.url) as http:
        for path in (f"{DB}/collections", "/api/v2/tenants/default_tenant/databases"):
            response = http.get(path, params={param: value})
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "InvalidArgumentError"
            assert param in response.json()["message"]


def test_largest_paging_values_chroma_accepts_work(client: ClientAPI, server: Server) -> None:
    client.create_collection("docs")
    assert [c.name for c in client.list_collections(limit=PAST_U32 - 1)] == ["docs"]
    assert client.list_collections(offset=PAST_U32 - 1) == []
    admin = admin_client(server)
    assert [d["name"] for d in admin.list_databases(limit=PAST_U32 - 1)] == ["default_database"]


@pytest.mark.parametrize("value", [PAST_U32, 2**63 - 1])
def test_out_of_range_get_query_and_delete_values_are_invalid(
    client: ClientAPI, value: int
) -> None:
    collection = client.create_collection("docs")
    collection.add(ids=["a"], embeddings=f32([[1.0, 0.0]]))
    with pytest.raises(InvalidArgumentError, match="limit"):
        collection.get(limit=value)
    with pytest.raises(InvalidArgumentError, match="offset"):
        collection.get(offset=value)
    with pytest.raises(InvalidArgumentError, match="n_results"):
        collection.query(query_embeddings=f32([[1.0, 0.0]]), n_results=value)
    with pytest.raises(InvalidArgumentError, match="limit"):
        collection.delete(where={"k": 1}, limit=value)
    assert collection.count() == 1


def test_values_past_64_bits_in_a_body_are_invalid(client: ClientAPI, server: Server) -> None:
    # The Python client cannot encode them; curl and the JS client can.
    collection = client.create_collection("docs")
    collection.add(ids=["a"], embeddings=f32([[1.0, 0.0]]))
    path = f"{DB}/collections/{collection.id}"
    with httpx.Client(base_url=server.url) as http:
        for route, body in (
            ("get", {"limit": HUGE}),
            ("get", {"offset": HUGE}),
            ("query", {"query_embeddings": [[1.0, 0.0]], "n_results": HUGE}),
            ("delete", {"where": {"k": 1}, "limit": HUGE}),
        ):
            response = http.post(f"{path}/{route}", json=body)
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "InvalidArgumentError"
    assert collection.count() == 1


def test_out_of_range_paging_is_invalid_with_the_async_client(
    client: ClientAPI, server: Server
) -> None:
    async def workflow(aclient: AsyncClientAPI) -> None:
        await aclient.create_collection("docs")
        with pytest.raises(InvalidArgumentError, match="limit"):
            await aclient.list_collections(limit=HUGE)
        with pytest.raises(InvalidArgumentError, match="offset"):
            await aclient.list_collections(offset=PAST_U32)
        assert [c.name for c in await aclient.list_collections(limit=10)] == ["docs"]

    run_async(server, workflow)
