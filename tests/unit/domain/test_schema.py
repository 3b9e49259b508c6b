"""Collection ``schema`` reconciled with the configuration and the legacy ``hnsw:*`` metadata
(``domain/schema``), as Chroma's single-node server does (contract §2.3 and §11;
rust/types/src/indexes.rs). The same through the official client is
``tests/e2e/test_collection_schema.py``."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from chroma_serverless.catalog.sqlite.catalog import SqliteCatalog
from chroma_serverless.domain.schema import indexes, validation
from chroma_serverless.domain.schema.configuration import internal_configuration
from chroma_serverless.errors import InvalidArgumentError as ServerInvalidArgument
from chroma_serverless.errors import InvalidRequestBodyError
from chroma_serverless.wire import responses
from tests.support.schema import (
    DEFAULT_FUNCTION,
    expected_configuration,
    expected_schema,
    threads,
)

if TYPE_CHECKING:
    from pathlib import Path


def reconciled(
    configuration: dict[str, Any] | None = None,
    schema: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    internal = internal_configuration(configuration, metadata)
    return indexes.reconcile(validation.parse(schema), internal)


def test_configuration_is_derived_from_the_schema() -> None:
    schema = reconciled({"hnsw": {"space": "cosine", "ef_construction": 64}})
    assert indexes.to_configuration(schema) == expected_configuration(
        "cosine", None, ef_construction=64
    )


def test_legacy_metadata_fills_in_only_for_a_default_configuration() -> None:
    metadata = {"hnsw:space": "cosine", "hnsw:M": 8}
    default = indexes.to_configuration(reconciled({"hnsw": {"space": "l2"}}, None, metadata))
    assert (default["hnsw"]["space"], default["hnsw"]["max_neighbors"]) == ("cosine", 8)
    chosen = indexes.to_configuration(reconciled({"hnsw": {"space": "ip"}}, None, metadata))
    assert (chosen["hnsw"]["space"], chosen["hnsw"]["max_neighbors"]) == ("ip", 16)
    with pytest.raises(ServerInvalidArgument, match="Failed to parse hnsw parameters"):
        reconciled(None, None, {"hnsw:space": "hamming"})


def test_a_default_schema_takes_the_configurations_function() -> None:
    function = {"type": "known", "name": "mine", "config": {"k": [1, 2]}}
    schema = reconciled({"embedding_function": function}, expected_schema())
    assert schema == expected_schema("l2", function, threads(schema))


def test_a_custom_schema_wins_over_a_default_configuration() -> None:
    sent = expected_schema()
    sent["defaults"]["int"]["int_inverted_index"]["enabled"] = False
    sent["keys"]["#embedding"]["float_list"]["vector_index"]["config"]["space"] = "ip"
    schema = reconciled({"embedding_function": DEFAULT_FUNCTION}, sent)
    assert schema["defaults"]["int"]["int_inverted_index"]["enabled"] is False
    assert indexes.to_configuration(schema)["hnsw"]["space"] == "ip"
    # ... and the configuration's function is not applied over it (Rust keeps the schema).
    assert indexes.to_configuration(schema)["embedding_function"] is None


def test_a_sent_spann_block_is_served_by_hnsw() -> None:
    sent = {
        "defaults": {},
        "keys": {
            "#embedding": {
                "float_list": {
                    "vector_index": {"enabled": True, "config": {"spann": {"search_nprobe": 8}}}
                }
            }
        },
    }
    schema = reconciled(None, sent)
    config = schema["keys"]["#embedding"]["float_list"]["vector_index"]["config"]
    assert "spann" not in config and config["hnsw"]["ef_search"] == 100


def test_a_schema_with_default_spann_settings_is_still_default() -> None:
    sent: dict[str, Any] = {
        "defaults": {},
        "keys": {
            "#embedding": {
                "float_list": {
                    "vector_index": {
                        "enabled": True,
                        "config": {
                            "source_key": "#document",
                            "spann": {"search_nprobe": 64, "ef_search": 200},
                        },
                    }
                }
            }
        },
    }
    schema = reconciled({"hnsw": {"space": "ip"}}, sent)  # no conflict: the schema is default
    assert indexes.to_configuration(schema)["hnsw"]["space"] == "ip"
    sent["keys"]["#embedding"]["float_list"]["vector_index"]["config"]["spann"]["ef_search"] = 9
    with pytest.raises(ServerInvalidArgument, match="Cannot set both"):
        reconciled({"hnsw": {"space": "ip"}}, sent)


def test_a_sparse_index_on_a_key_is_kept() -> None:
    index = {"enabled": True, "config": {"bm25": True}}
    sent = {"defaults": {}, "keys": {"sparse": {"sparse_vector": {"sparse_vector_index": index}}}}
    schema = reconciled(None, sent)
    assert schema["keys"]["sparse"]["sparse_vector"]["sparse_vector_index"] == index
    assert indexes.sparse_indexes(schema) == {"sparse": True}


def test_schema_shape_errors_are_422() -> None:
    with pytest.raises(InvalidRequestBodyError, match="missing field `keys`"):
        validation.parse({"defaults": {}})
    with pytest.raises(InvalidRequestBodyError, match="unknown variant `hamming`"):
        bad = expected_schema()
        bad["keys"]["#embedding"]["float_list"]["vector_index"]["config"]["space"] = "hamming"
        validation.parse(bad)


def test_updates_reach_both_vector_indexes() -> None:
    schema = reconciled()
    function = {"type": "known", "name": "mine", "config": {}}
    update = {"hnsw": {"ef_search": 7, "batch_size": 50}, "embedding_function": function}
    changed = indexes.updated(schema, update)
    for config in (
        changed["defaults"]["float_list"]["vector_index"]["config"],
        changed["keys"]["#embedding"]["float_list"]["vector_index"]["config"],
    ):
        assert (config["hnsw"]["ef_search"], config["hnsw"]["batch_size"]) == (7, 50)
        assert config["embedding_function"] == function
    # A SPANN update has nothing to change on an HNSW collection (as on Chroma's single node).
    assert indexes.updated(schema, {"spann": {"search_nprobe": 3}}) == schema
    with pytest.raises(ServerInvalidArgument, match="distance space"):
        indexes.updated(schema, {"hnsw": {"space": "ip"}})


def test_collections_stored_without_a_schema_get_one() -> None:
    configuration = expected_configuration("ip", DEFAULT_FUNCTION, ef_search=30)
    schema = indexes.from_configuration(configuration)
    assert schema == expected_schema("ip", DEFAULT_FUNCTION, threads(schema), ef_search=30)
    assert indexes.to_configuration(schema) == configuration


def test_catalog_files_from_before_schemas_still_read(tmp_path: Path) -> None:
    """A SQLite catalog written without the schema column gains it; its collections answer
    with the schema derived from their stored configuration."""
    path = tmp_path / "catalog.sqlite3"
    SqliteCatalog(path)
    configuration = expected_configuration("cosine", DEFAULT_FUNCTION, ef_search=40)
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE collections DROP COLUMN schema")
        database_id = db.execute("SELECT id FROM databases").fetchone()[0]
        db.execute(
            "INSERT INTO collections VALUES (?, ?, 'old', NULL, ?, NULL)",
            (str(uuid.uuid4()), database_id, json.dumps(configuration)),
        )
    db.close()
    catalog = SqliteCatalog(path)
    old = catalog.get_collection("default_tenant", "default_database", "old")
    assert old.schema is None
    answer = responses.collection(old)
    assert answer["configuration_json"] == configuration
    assert answer["schema"] == expected_schema(
        "cosine", DEFAULT_FUNCTION, threads(answer["schema"]), ef_search=40
    )
