"""Collection ``schema`` and custom embedding functions (issue 9, items 1 and 2).

End to end through the official client (sync ``HttpClient`` and async ``AsyncHttpClient``)
against both server modes; the unit tests of the reconciliation are
``tests/unit/domain/test_schema.py``. Expected answers are Chroma's single-node server's
(contract §2.3 and §11; rust/types/src/indexes.rs).
"""

from __future__ import annotations

import asyncio
import copy
import warnings
from typing import TYPE_CHECKING, Any

import chromadb
import httpx
import numpy as np
import pytest
from chromadb.api.types import (
    Documents,
    EmbeddingFunction,
    Embeddings,
    Schema,
    StringInvertedIndexConfig,
)
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import InvalidArgumentError
from chromadb.utils.embedding_functions import register_embedding_function

from tests.support.schema import (
    DEFAULT_FUNCTION,
    expected_configuration,
    expected_schema,
    threads,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from chromadb.api import AsyncClientAPI, ClientAPI
    from chromadb.api.models.Collection import Collection

    from tests.support.server import Server

DB = "/api/v2/tenants/default_tenant/databases/default_database"


@register_embedding_function
class LetterCounts(EmbeddingFunction[Documents]):
    """A client-side function the server cannot know: vectors count letters a, b and c.

    The client's hints ask for a function of documents and images alike
    (``EmbeddingFunction[Embeddable]``, contravariant), which no text function is, the client's
    own default included (it passes it with a ``type: ignore``): so do the calls below.
    """

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def __call__(self, input: Documents) -> Embeddings:
        return [
            np.array([d.count(c) * self.weight for c in "abc"], dtype=np.float32) for d in input
        ]

    @staticmethod
    def name() -> str:
        return "letter_counts"

    def get_config(self) -> dict[str, Any]:
        return {"weight": self.weight}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> LetterCounts:
        return LetterCounts(config["weight"])


@register_embedding_function
class Constant(LetterCounts):
    @staticmethod
    def name() -> str:
        return "constant"


def raw_schema(collection: Collection) -> dict[str, Any]:
    schema: dict[str, Any] = collection._model.serialized_schema or {}
    return schema


def serialized(schema: Schema | None) -> dict[str, Any]:
    """Schemas compare by their JSON (their function objects compare by identity)."""
    assert schema is not None
    return schema.serialize_to_json()


def assert_views_agree(collection: Collection) -> None:
    """``collection.configuration`` (built from configuration_json), the deserialized ``schema``
    and the JSON all say the same: what the client's configuration features rely on."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Could not reconstruct embedding function"
        schema = collection.schema
        configuration = collection.configuration
    assert schema is not None
    vector = schema.keys["#embedding"].float_list.vector_index.config  # type: ignore[union-attr]
    hnsw = collection.configuration_json["hnsw"]
    assert configuration.get("hnsw") == hnsw
    assert vector.space == hnsw["space"]
    assert vector.hnsw is not None
    assert (vector.hnsw.ef_search, vector.hnsw.max_neighbors) == (
        hnsw["ef_search"],
        hnsw["max_neighbors"],
    )
    persisted = collection.configuration_json["embedding_function"]
    built = configuration.get("embedding_function")
    if persisted is None or persisted["type"] != "known":
        assert built is None
    else:
        assert built is not None and built.name() == persisted["name"]
        assert built.get_config() == persisted["config"]
        assert vector.embedding_function is not None
        assert vector.embedding_function.name() == persisted["name"]


# ------------------------------------------------------------------ e2e, sync client


# How a collection is created, and the space, function and HNSW parameters Chroma reports.
CREATIONS: list[tuple[str, dict[str, Any], str, dict[str, Any] | None, dict[str, Any]]] = [
    ("no configuration", {"embedding_function": None}, "l2", None, {}),
    ("default function", {}, "l2", DEFAULT_FUNCTION, {}),
    (
        "hnsw",
        {"configuration": {"hnsw": {"space": "ip", "ef_search": 50, "max_neighbors": 8}}},
        "ip",
        DEFAULT_FUNCTION,
        {"ef_search": 50, "max_neighbors": 8},
    ),
    (
        "spann",
        {"configuration": {"spann": {"space": "cosine", "search_nprobe": 64}}},
        "cosine",
        DEFAULT_FUNCTION,
        {},
    ),
    (
        "custom function",
        {"embedding_function": LetterCounts(2.0)},
        "l2",
        {"type": "known", "name": "letter_counts", "config": {"weight": 2.0}},
        {},
    ),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("how", "create", "space", "function", "hnsw"), CREATIONS)
def test_collection_json_carries_chromas_schema(
    client: ClientAPI,
    how: str,
    create: dict[str, Any],
    space: str,
    function: dict[str, Any] | None,
    hnsw: dict[str, Any],
) -> None:
    created = client.create_collection("things", **create)
    fetched = client.get_collection("things", embedding_function=None)
    for collection in (created, fetched, client.list_collections()[0]):
        schema = raw_schema(collection)
        assert schema == expected_schema(space, function, threads(schema), **hnsw), how
        assert collection.configuration_json == expected_configuration(space, function, **hnsw)
        assert_views_agree(collection)


@pytest.mark.e2e
def test_custom_embedding_function_round_trip(client: ClientAPI) -> None:
    collection = client.create_collection("letters", embedding_function=LetterCounts(2.0))  # type: ignore[arg-type]
    expected = {"type": "known", "name": "letter_counts", "config": {"weight": 2.0}}
    assert collection.configuration_json["embedding_function"] == expected
    # The client embeds with the function it rebuilds from the server's answer.
    again = client.get_collection("letters")
    again.add(ids=["x", "y"], documents=["aab", "cc"])
    stored = again.get(include=["embeddings"])["embeddings"]
    assert stored is not None
    assert np.array_equal(stored, [[4.0, 2.0, 0.0], [0.0, 0.0, 4.0]])
    result = again.query(query_texts=["ab"], n_results=1)
    assert result["ids"] == [["x"]]
    # get_or_create returns the stored function; a different one conflicts in the client.
    same = client.get_or_create_collection("letters", embedding_function=LetterCounts(2.0))  # type: ignore[arg-type]
    assert same.id == collection.id
    with pytest.raises(ValueError, match="Embedding function conflict"):
        client.get_collection("letters", embedding_function=Constant())  # type: ignore[arg-type]


@pytest.mark.e2e
def test_modify_embedding_function_round_trips(client: ClientAPI) -> None:
    collection = client.create_collection("letters", embedding_function=LetterCounts())  # type: ignore[arg-type]
    # The client only lets a function's config change, not its name.
    collection.modify(configuration={"embedding_function": LetterCounts(3.0)})
    fetched = client.get_collection("letters", embedding_function=None)
    expected = {"type": "known", "name": "letter_counts", "config": {"weight": 3.0}}
    assert fetched.configuration_json["embedding_function"] == expected
    assert raw_schema(fetched) == expected_schema("l2", expected, threads(raw_schema(fetched)))
    assert fetched.configuration_json == collection.configuration_json
    assert_views_agree(fetched)


@pytest.mark.e2e
def test_hnsw_updates_round_trip(client: ClientAPI) -> None:
    collection = client.create_collection("tuned", configuration={"hnsw": {"ef_search": 50}})
    collection.modify(configuration={"hnsw": {"ef_search": 200, "sync_threshold": 500}})
    fetched = client.get_collection("tuned")
    assert fetched.configuration_json["hnsw"]["ef_search"] == 200
    assert fetched.configuration_json["hnsw"]["sync_threshold"] == 500
    # The client updated its own copy; the server's answer is the same.
    assert fetched.configuration_json == collection.configuration_json
    assert serialized(fetched.schema) == serialized(collection.schema)
    assert_views_agree(fetched)


@pytest.mark.e2e
def test_a_sent_schema_is_kept(client: ClientAPI) -> None:
    schema = Schema().delete_index(config=StringInvertedIndexConfig(), key="secret")
    collection = client.create_collection("private", schema=schema)
    fetched = client.get_collection("private")
    for answer in (collection, fetched):
        keys = raw_schema(answer)["keys"]
        assert keys["secret"] == {
            "string": {"string_inverted_index": {"enabled": False, "config": {}}}
        }
        assert answer.schema is not None
        index = answer.schema.keys["secret"].string.string_inverted_index  # type: ignore[union-attr]
        assert index is not None and not index.enabled
        assert answer.configuration_json["embedding_function"] == DEFAULT_FUNCTION


@pytest.mark.e2e
def test_schema_and_configuration_together_conflict(client: ClientAPI) -> None:
    schema = Schema().delete_index(config=StringInvertedIndexConfig(), key="secret")
    with pytest.raises(InvalidArgumentError, match="Cannot set both collection config and schema"):
        client.create_collection("both", schema=schema, configuration={"hnsw": {"space": "ip"}})


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("schema_edit", "status", "message"),
    [
        (
            lambda s: s["defaults"]["float_list"]["vector_index"].update(enabled=True),
            400,
            "Validation error: schema: Vector index cannot be enabled by default.",
        ),
        (
            lambda s: s["keys"].update({"#secret": {}}),
            400,
            "Validation error: schema: key cannot begin with '#'.",
        ),
        (
            lambda s: s["keys"]["#embedding"]["float_list"]["vector_index"]["config"].update(
                hnsw={"ef_search": 10, "nonsense": 1}
            ),
            422,
            "Failed to deserialize the JSON body into the target type",
        ),
        (
            lambda s: s["defaults"]["float_list"]["vector_index"]["config"].update(
                hnsw={"sync_threshold": 1}
            ),
            400,
            "Invalid HNSW configuration",
        ),
    ],
)
def test_invalid_schemas_get_chromas_errors(
    server: Server, schema_edit: Callable[[dict[str, Any]], None], status: int, message: str
) -> None:
    schema = copy.deepcopy(expected_schema())
    schema_edit(schema)
    body = {"name": "bad", "metadata": None, "configuration": None, "schema": schema}
    with httpx.Client(base_url=server.url) as http:
        response = http.post(f"{DB}/collections", json=body)
        assert response.status_code == status, response.text
        assert response.json()["error"] == (
            "InvalidArgumentError" if status == 400 else "ChromaError"
        )
        assert response.json()["message"].startswith(message)
        assert http.get(f"{DB}/collections/bad").status_code == 404


# ------------------------------------------------------------------ e2e, async client


def run_async(server: Server, body: Callable[[AsyncClientAPI], Awaitable[None]]) -> None:
    async def main() -> None:
        client = await chromadb.AsyncHttpClient(
            host=server.host,
            port=server.port,
            settings=ChromaSettings(anonymized_telemetry=False, allow_reset=True),
        )
        try:
            await client.reset()
            await body(client)
        finally:
            await client._server._cleanup()  # type: ignore[attr-defined]

    asyncio.run(main())


@pytest.mark.e2e
def test_async_custom_function_and_schema(server: Server) -> None:
    async def body(client: AsyncClientAPI) -> None:
        created = await client.create_collection("letters", embedding_function=LetterCounts())  # type: ignore[arg-type]
        expected = {"type": "known", "name": "letter_counts", "config": {"weight": 1.0}}
        fetched = await client.get_collection("letters")
        for collection in (created, fetched):
            schema = raw_schema(collection)  # type: ignore[arg-type]
            assert schema == expected_schema("l2", expected, threads(schema))
            assert collection.configuration_json == expected_configuration("l2", expected)
            assert_views_agree(collection)  # type: ignore[arg-type]
        await fetched.add(ids=["x"], documents=["abc"])
        assert (await fetched.query(query_texts=["abc"], n_results=1))["ids"] == [["x"]]
        with pytest.raises(ValueError, match="Embedding function conflict"):
            await client.get_collection("letters", embedding_function=Constant())  # type: ignore[arg-type]

    run_async(server, body)


@pytest.mark.e2e
@pytest.mark.parametrize(("how", "create", "space", "function", "hnsw"), CREATIONS)
def test_async_collection_json_carries_chromas_schema(
    server: Server,
    how: str,
    create: dict[str, Any],
    space: str,
    function: dict[str, Any] | None,
    hnsw: dict[str, Any],
) -> None:
    async def body(client: AsyncClientAPI) -> None:
        created = await client.create_collection("things", **create)
        fetched = await client.get_collection("things", embedding_function=None)
        for collection in (created, fetched, (await client.list_collections())[0]):
            schema = raw_schema(collection)  # type: ignore[arg-type]
            assert schema == expected_schema(space, function, threads(schema), **hnsw), how
            expected = expected_configuration(space, function, **hnsw)
            assert collection.configuration_json == expected
            assert_views_agree(collection)  # type: ignore[arg-type]

    run_async(server, body)


@pytest.mark.e2e
def test_async_spann_and_hnsw_updates(server: Server) -> None:
    async def body(client: AsyncClientAPI) -> None:
        spann = await client.create_collection(
            "spann", configuration={"spann": {"space": "ip", "search_nprobe": 10}}
        )
        schema = raw_schema(spann)  # type: ignore[arg-type]
        assert schema == expected_schema("ip", DEFAULT_FUNCTION, threads(schema))
        tuned = await client.create_collection("tuned", configuration={"hnsw": {"ef_search": 5}})
        await tuned.modify(configuration={"hnsw": {"ef_search": 60}})
        fetched = await client.get_collection("tuned")
        assert fetched.configuration_json["hnsw"]["ef_search"] == 60
        assert serialized(fetched.schema) == serialized(tuned.schema)
        assert_views_agree(fetched)  # type: ignore[arg-type]

    run_async(server, body)
