"""A collection's configuration as a create request states it, turned into the HNSW settings a
single-node Chroma server keeps (rust/types/src/collection_configuration.rs, ``try_from_config``
with HNSW as the index): ``hnsw`` parameters, or a ``spann`` request's space, or the legacy
``hnsw:*`` collection metadata, plus the embedding function, which may have any name.
"""

from __future__ import annotations

import os
from typing import Any

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.types import SPACES

Json = dict[str, Any]

# Rust's InternalHnswConfiguration defaults (hnsw_configuration.rs); num_threads is the host's
# parallelism there too. num_threads and batch_size appear in the schema, not in configuration_json.
HNSW_DEFAULTS: Json = {
    "space": "l2",
    "ef_construction": 100,
    "ef_search": 100,
    "max_neighbors": 16,
    "num_threads": os.cpu_count() or 1,
    "resize_factor": 1.2,
    "sync_threshold": 1000,
    "batch_size": 100,
}
LEGACY_HNSW_KEYS = {
    "hnsw:space": "space",
    "hnsw:construction_ef": "ef_construction",
    "hnsw:search_ef": "ef_search",
    "hnsw:M": "max_neighbors",
    "hnsw:num_threads": "num_threads",
    "hnsw:resize_factor": "resize_factor",
    "hnsw:sync_threshold": "sync_threshold",
    "hnsw:batch_size": "batch_size",
}


def internal_configuration(configuration: Json | None, metadata: Json | None) -> Json:
    """``{"hnsw": {...all HNSW_DEFAULTS keys...}, "embedding_function": ... | None}`` for a
    create request (Rust: ``InternalCollectionConfiguration::try_from_config`` with HNSW)."""
    configuration = object_or_none(configuration, "configuration") or {}
    hnsw = object_or_none(configuration.get("hnsw"), "configuration.hnsw")
    spann = object_or_none(configuration.get("spann"), "configuration.spann")
    function = embedding_function(configuration.get("embedding_function"))
    if hnsw is not None and spann is not None:
        raise InvalidArgumentError("Multiple vector index configurations provided")
    if spann is not None:
        # A single-node server serves SPANN requests with HNSW and keeps only the space.
        space = spann.get("space")
        return {
            "hnsw": hnsw_configuration({} if space is None else {"space": space}),
            "embedding_function": function,
        }
    legacy = _legacy_hnsw(metadata)
    if hnsw is None:
        return {"hnsw": legacy, "embedding_function": function}
    sent = hnsw_configuration(hnsw)
    # Legacy metadata only fills in for a configuration left at its defaults.
    return {"hnsw": legacy if sent == HNSW_DEFAULTS else sent, "embedding_function": function}


def is_default_configuration(internal: Json) -> bool:
    return is_default_function(internal["embedding_function"]) and internal["hnsw"] == HNSW_DEFAULTS


def embedding_function(value: object) -> Json | None:
    """An ``embedding_function`` entry: ``{"type": "legacy"|"unknown"}`` or ``{"type": "known",
    "name": <any name>, "config": {...}}``. Any name is kept: functions run in the client."""
    function = object_or_none(value, "embedding_function")
    if function is None:
        return None
    kind = function.get("type")
    if kind in ("legacy", "unknown"):
        return {"type": kind}
    if kind != "known":
        raise InvalidArgumentError(
            f"Expected embedding_function.type to be known, legacy or unknown, got {kind}"
        )
    if not isinstance(function.get("name"), str) or "config" not in function:
        raise InvalidArgumentError(
            f"Expected a known embedding_function to have a str name and a config, got {function}"
        )
    return {"type": "known", "name": function["name"], "config": function["config"]}


def hnsw_configuration(sent: Json) -> Json:
    hnsw = dict(HNSW_DEFAULTS)
    hnsw.update({k: v for k, v in sent.items() if k in HNSW_DEFAULTS and v is not None})
    check_hnsw(hnsw, "hnsw")
    return hnsw


def check_hnsw(hnsw: Json, what: str) -> None:
    if "space" in hnsw and hnsw["space"] not in SPACES:
        raise InvalidArgumentError(
            f"Expected space to be one of {', '.join(SPACES)}, got {hnsw['space']}"
        )
    for key, value in hnsw.items():
        if key == "space":
            continue
        number = int if key != "resize_factor" else (int, float)
        if isinstance(value, bool) or not isinstance(value, number) or value <= 0:
            kind = "an int" if number is int else "a number"
            raise InvalidArgumentError(f"Expected {what} {key} to be {kind} > 0, got {value}")
        if key in ("sync_threshold", "batch_size") and value < 2:
            raise InvalidArgumentError(f"Expected {what} {key} to be at least 2, got {value}")


def _legacy_hnsw(metadata: Json | None) -> Json:
    """HNSW parameters from ``hnsw:*`` collection metadata, which Chroma still honours."""
    hnsw = dict(HNSW_DEFAULTS)
    for key, value in (metadata or {}).items():
        if not key.startswith("hnsw:"):
            continue
        if key not in LEGACY_HNSW_KEYS:
            raise InvalidArgumentError("Failed to parse hnsw parameters from segment metadata")
        hnsw[LEGACY_HNSW_KEYS[key]] = value
    try:
        check_hnsw(hnsw, "hnsw")
    except InvalidArgumentError as exc:
        raise InvalidArgumentError("Failed to parse hnsw parameters from segment metadata") from exc
    return hnsw


def is_default_function(function: Json | None) -> bool:
    """Rust's ``is_embedding_function_default``: absent, unknown or the one named default."""
    if function is None or function["type"] == "unknown":
        return True
    return bool(function["type"] == "known" and function["name"] == "default")


def object_or_none(value: object, what: str) -> Json | None:
    if value is not None and not isinstance(value, dict):
        raise InvalidArgumentError(f"Expected {what} to be an object or null, got {value}")
    return value
