"""``export`` then ``import`` gives back any collection the API can create, bit for bit: every
configuration (a distance space through ``hnsw:*`` metadata or through ``configuration``, a
custom embedding function, a schema), every record (ids of any characters, documents, uris,
every metadata type, sparse vectors), its metadata, configuration and schema; in both formats,
from storage and through the HTTP API. Records and collections are written and read back as raw
JSON, so that an int that came back a float, or a key that moved, shows."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import strategies
from tests.support.commands import VIAS, cli, target
from tests.support.schema import expected_schema

if TYPE_CHECKING:
    from pathlib import Path

    from chromadb.api import ClientAPI

    from tests.support.server import Server

pytestmark = pytest.mark.e2e

FORMATS = ["parquet", "jsonl"]
OFF, ON = {"enabled": False, "config": {}}, {"enabled": True, "config": {}}
CUSTOM_FUNCTION = {"type": "known", "name": "my_custom_ef", "config": {"model": "m", "n": [1, 2]}}


def with_keys() -> dict[str, Any]:
    """A schema of its own: no inverted index on ``tag``, a sparse vector index on ``sparse``."""
    schema = expected_schema()
    sparse = {"embedding_function": {"type": "unknown"}, "bm25": False}
    schema["keys"]["tag"] = {"string": {"string_inverted_index": OFF}}
    schema["keys"]["sparse"] = {
        "sparse_vector": {"sparse_vector_index": {"enabled": True, "config": sparse}}
    }
    return schema


# name -> the create request's metadata, configuration and schema
CONFIGURED: dict[str, dict[str, Any]] = {
    "cosine-by-metadata": {"metadata": {"hnsw:space": "cosine", "team": "search"}},
    "ip-by-metadata": {"metadata": {"hnsw:space": "ip", "hnsw:search_ef": 120}},
    "l2-by-metadata": {"metadata": {"hnsw:space": "l2"}},
    "cosine-by-configuration": {"configuration": {"hnsw": {"space": "cosine", "ef_search": 150}}},
    "ip-by-configuration": {"configuration": {"hnsw": {"space": "ip"}}},
    "l2-by-configuration": {"configuration": {"hnsw": {"space": "l2", "max_neighbors": 32}}},
    "metadata-and-configuration": {
        "metadata": {"hnsw:space": "cosine", "since": 2024},
        "configuration": {"hnsw": {"space": "ip", "ef_construction": 200}},
    },
    "custom-function": {
        "metadata": {"hnsw:space": "cosine"},
        "configuration": {"embedding_function": CUSTOM_FUNCTION},
    },
    "spann": {"configuration": {"spann": {"space": "cosine"}}},
    "with-schema": {"metadata": {"kept": True, "ratio": 0.5}, "schema": with_keys()},
    "default": {},
}


def sparse(i: int) -> dict[str, Any]:
    vector: dict[str, Any] = {"#type": "sparse_vector", "indices": [i, i + 3], "values": [0.5, i]}
    return vector if i % 2 else {**vector, "tokens": ["a", "b"]}


def records(n: int) -> dict[str, Any]:
    """Every kind of value: int, float (an integral one too), bool, str, lists of each, sparse
    vectors, a key of two types, no metadata, no document, uris."""
    metadatas: list[dict[str, Any] | None] = [
        None
        if i % 5 == 4
        else {
            "i": i,
            "f": i / 3,
            "whole": float(i),
            "b": i % 2 == 0,
            "s": f"v{i} ✓",
            "ints": [i, -i],
            "floats": [0.25, float(i)],
            "bools": [True, False],
            "strs": ["x", f"y{i}"],
            "mixed": i if i % 2 else f"s{i}",
            "tag": "red",
            "sparse": sparse(i),
        }
        for i in range(n)
    ]
    return {
        "ids": [f"id {i} \t'\"%_é😀" for i in range(n)],
        "embeddings": [[i / 7, -1.5, 3.0e-8 * i] for i in range(n)],
        "metadatas": metadatas,
        "documents": [None if i % 3 == 1 else f"text {i}" for i in range(n)],
        "uris": [f"s3://b/{i}" if i % 2 else None for i in range(n)],
    }


# ------------------------------------------------------------------ raw JSON of the API


def api(server: Server, database: str) -> str:
    return f"{server.url}/api/v2/tenants/default_tenant/databases/{database}"


def create(server: Server, database: str, name: str, request: dict[str, Any]) -> str:
    body = {"metadata": None, "configuration": None, "schema": None, **request}
    answer = httpx.post(f"{api(server, database)}/collections", json={"name": name, **body})
    assert answer.status_code == 200, answer.text
    collection_id: str = answer.json()["id"]
    return collection_id


def add(server: Server, collection_id: str, batch: dict[str, Any]) -> None:
    if batch["ids"]:
        path = f"{api(server, 'default_database')}/collections/{collection_id}/add"
        answer = httpx.post(path, json=batch)
        assert answer.is_success, answer.text


def snapshot(server: Server, database: str) -> dict[str, str]:
    """Every collection of the database, and its records, as the API answers them: JSON text,
    in which 1 and 1.0 differ."""
    found = {}
    for collection in httpx.get(f"{api(server, database)}/collections").json():
        kept = ("name", "metadata", "configuration_json", "schema", "dimension")
        path = f"{api(server, database)}/collections/{collection['id']}/get"
        include = ["embeddings", "documents", "uris", "metadatas"]
        got = httpx.post(path, json={"include": include}).json()
        found[collection["name"]] = json.dumps(
            {"collection": {k: collection[k] for k in kept}, "records": got}, sort_keys=True
        )
    return found


def copy_back(server: Server, tmp_path: Path, via: str, format: str, *names: str) -> str:
    """Export the default database (or ``names``) and import it into a new database."""
    out = tmp_path / f"export-{uuid.uuid4().hex[:8]}"
    chosen = [arg for name in names for arg in ("--collection", name)]
    cli(server, "export", str(out), "--format", format, *chosen, *target(server, via))
    database = f"copy-{uuid.uuid4().hex[:8]}"
    databases = f"{server.url}/api/v2/tenants/default_tenant/databases"
    answer = httpx.post(databases, json={"name": database})
    assert answer.status_code == 200, answer.text
    load = ["import", str(out), "--database", database, "--state-dir", str(tmp_path / "state")]
    cli(server, *load, "--no-maintain", *target(server, via))
    return database


# ------------------------------------------------------------------ every configuration


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("via", VIAS)
def test_every_configuration_round_trips_exactly(
    client: ClientAPI, server: Server, tmp_path: Path, via: str, format: str
) -> None:
    # GIVEN a collection of each configuration the API can create, each with every kind of value
    for name, request in CONFIGURED.items():
        add(server, create(server, "default_database", name, request), records(12))

    # WHEN the database is exported, and the export imported into a new database
    copy = copy_back(server, tmp_path, via, format)

    # THEN each collection is back as it was: records, metadata, configuration and schema
    before, after = snapshot(server, "default_database"), snapshot(server, copy)
    assert sorted(after) == sorted(CONFIGURED)
    for name in CONFIGURED:
        assert after[name] == before[name], name


# ------------------------------------------------------------------ generated collections


@st.composite
def collections(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A create request of any configuration above, and records of generated values and ids."""
    request = CONFIGURED[draw(st.sampled_from(sorted(CONFIGURED)))]
    data = draw(strategies.datasets(max_records=8))
    n = len(data.records)
    uris = draw(st.lists(st.one_of(st.none(), strategies.text()), min_size=n, max_size=n))
    with_sparse = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    metadatas = [
        {**(r.metadata or {}), "sv": sparse(i)} if with_sparse[i] else r.metadata
        for i, r in enumerate(data.records)
    ]
    batch = {
        "ids": data.ids,
        "embeddings": data.embeddings,
        "metadatas": metadatas,
        "documents": [r.document for r in data.records],
        "uris": uris,
    }
    return request, batch


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(collection=collections(), via=st.sampled_from(VIAS), format=st.sampled_from(FORMATS))
def test_any_collection_round_trips_exactly(
    server: Server,
    tmp_path: Path,
    collection: tuple[dict[str, Any], dict[str, Any]],
    via: str,
    format: str,
) -> None:
    # GIVEN a generated collection (of its own name, beside the others of earlier examples)
    request, batch = collection
    name = f"gen-{uuid.uuid4().hex[:12]}"
    add(server, create(server, "default_database", name, request), batch)

    # WHEN it alone is exported and imported into a new database
    copy = copy_back(server, tmp_path, via, format, name)

    # THEN it is back as it was
    assert snapshot(server, copy) == {name: snapshot(server, "default_database")[name]}
