"""Chroma's schema and configuration of a collection, written out in full (contract §2.3):
what its single-node server answers, for the end-to-end and the unit tests alike."""

from __future__ import annotations

from typing import Any

DEFAULT_FUNCTION = {"type": "known", "name": "default", "config": {}}


def expected_schema(
    space: str = "l2",
    function: dict[str, Any] | None = None,
    num_threads: int = 2,
    **hnsw: Any,
) -> dict[str, Any]:
    """Chroma's schema for a new collection (contract §2.3), written out in full."""
    params = {
        "ef_construction": 100,
        "max_neighbors": 16,
        "ef_search": 100,
        "num_threads": num_threads,
        "batch_size": 100,
        "sync_threshold": 1000,
        "resize_factor": 1.2,
        **hnsw,
    }
    vector: dict[str, Any] = {"space": space}
    if function is not None:
        vector["embedding_function"] = function
    off, on = {"enabled": False, "config": {}}, {"enabled": True, "config": {}}
    return {
        "defaults": {
            "string": {"fts_index": off, "string_inverted_index": on},
            "float_list": {
                "vector_index": {"enabled": False, "config": {**vector, "hnsw": params}}
            },
            "sparse_vector": {
                "sparse_vector_index": {
                    "enabled": False,
                    "config": {"embedding_function": {"type": "unknown"}, "bm25": False},
                }
            },
            "int": {"int_inverted_index": on},
            "float": {"float_inverted_index": on},
            "bool": {"bool_inverted_index": on},
        },
        "keys": {
            "#document": {"string": {"fts_index": on, "string_inverted_index": off}},
            "#embedding": {
                "float_list": {
                    "vector_index": {
                        "enabled": True,
                        "config": {**vector, "source_key": "#document", "hnsw": params},
                    }
                }
            },
        },
    }


def expected_configuration(
    space: str = "l2", function: dict[str, Any] | None = None, **hnsw: Any
) -> dict[str, Any]:
    params = {
        "space": space,
        "ef_construction": 100,
        "ef_search": 100,
        "max_neighbors": 16,
        "resize_factor": 1.2,
        "sync_threshold": 1000,
        **hnsw,
    }
    return {"hnsw": params, "spann": None, "embedding_function": function}


def threads(schema: dict[str, Any]) -> int:
    """num_threads is the server host's parallelism, as on Chroma."""
    value: int = schema["keys"]["#embedding"]["float_list"]["vector_index"]["config"]["hnsw"][
        "num_threads"
    ]
    return value
