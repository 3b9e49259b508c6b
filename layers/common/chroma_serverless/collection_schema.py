"""A collection's ``schema``: Chroma's index settings per value type and per key.

Chroma 1.x describes a collection twice: ``configuration_json`` (hnsw, spann, embedding function)
and ``schema`` (which indexes exist for each value type, by default and for special keys such as
``#embedding``). The official client reads both: it resolves the embedding function from either,
checks them against each other, and edits the schema itself after ``modify(configuration=...)``.
So both must be present and agree, exactly as on Chroma's single-node server, whose rules
(rust/types/src/collection_schema.rs, collection_configuration.rs and the local frontend, where the
vector index is always HNSW) this module follows:

- create: the configuration (or the legacy ``hnsw:*`` metadata) is turned into an HNSW
  configuration (a SPANN one keeps only its space); a sent schema is validated and merged over the
  defaults; a non-default configuration and a non-default schema together are an error; otherwise
  whichever is not default wins;
- the stored ``configuration_json`` is always derived from the schema's ``#embedding`` vector index;
- modify: HNSW parameters and the embedding function are written into the schema's vector indexes.

Schemas are kept as the JSON Chroma sends and returns (plain dicts), normalised by :func:`parse`.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.types import SPACES

Json = dict[str, Any]

DOCUMENT_KEY = "#document"
EMBEDDING_KEY = "#embedding"

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
CONFIGURATION_HNSW_KEYS = (
    "space",
    "ef_construction",
    "ef_search",
    "max_neighbors",
    "resize_factor",
    "sync_threshold",
)
SCHEMA_HNSW_KEYS = (
    "ef_construction",
    "max_neighbors",
    "ef_search",
    "num_threads",
    "batch_size",
    "sync_threshold",
    "resize_factor",
)
# What modify(configuration={"hnsw": ...}) may change (Rust: Schema::update).
UPDATABLE_HNSW = (
    "ef_search",
    "max_neighbors",
    "num_threads",
    "resize_factor",
    "sync_threshold",
    "batch_size",
)
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
# Rust's SPANN defaults (spann_configuration.rs): a sent SPANN block equal to them is "default".
SPANN_DEFAULTS: Json = {
    "search_nprobe": 64,
    "search_rng_factor": 1.0,
    "search_rng_epsilon": 10.0,
    "nreplica_count": 8,
    "write_rng_factor": 1.0,
    "write_rng_epsilon": 5.0,
    "split_threshold": 50,
    "num_samples_kmeans": 1000,
    "initial_lambda": 100.0,
    "reassign_neighbor_count": 64,
    "merge_threshold": 25,
    "num_centers_to_merge_to": 8,
    "write_nprobe": 32,
    "ef_construction": 200,
    "ef_search": 200,
    "max_neighbors": 64,
    "center_drift_threshold": 0.125,
    "quantize": "none",
}
CMEK_GCP = re.compile(r"projects/.+/locations/.+/keyRings/.+/cryptoKeys/.+\Z")


# ---------------------------------------------------------------------------- configuration


def internal_configuration(configuration: Json | None, metadata: Json | None) -> Json:
    """``{"hnsw": {...all HNSW_DEFAULTS keys...}, "embedding_function": ... | None}`` for a
    create request (Rust: ``InternalCollectionConfiguration::try_from_config`` with HNSW)."""
    configuration = _object_or_none(configuration, "configuration") or {}
    hnsw = _object_or_none(configuration.get("hnsw"), "configuration.hnsw")
    spann = _object_or_none(configuration.get("spann"), "configuration.spann")
    function = embedding_function(configuration.get("embedding_function"))
    if hnsw is not None and spann is not None:
        raise InvalidArgumentError("Multiple vector index configurations provided")
    if spann is not None:
        # A single-node server serves SPANN requests with HNSW and keeps only the space.
        space = spann.get("space")
        return {
            "hnsw": _hnsw({} if space is None else {"space": space}),
            "embedding_function": function,
        }
    legacy = _legacy_hnsw(metadata)
    if hnsw is None:
        return {"hnsw": legacy, "embedding_function": function}
    sent = _hnsw(hnsw)
    # Legacy metadata only fills in for a configuration left at its defaults.
    return {"hnsw": legacy if sent == HNSW_DEFAULTS else sent, "embedding_function": function}


def is_default_configuration(internal: Json) -> bool:
    return (
        _is_default_function(internal["embedding_function"]) and internal["hnsw"] == HNSW_DEFAULTS
    )


def embedding_function(value: object) -> Json | None:
    """An ``embedding_function`` entry: ``{"type": "legacy"|"unknown"}`` or ``{"type": "known",
    "name": <any name>, "config": {...}}``. Any name is kept: functions run in the client."""
    function = _object_or_none(value, "embedding_function")
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


def _hnsw(sent: Json) -> Json:
    hnsw = dict(HNSW_DEFAULTS)
    hnsw.update({k: v for k, v in sent.items() if k in HNSW_DEFAULTS and v is not None})
    _check_hnsw(hnsw, "hnsw")
    return hnsw


def _check_hnsw(hnsw: Json, what: str) -> None:
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
        _check_hnsw(hnsw, "hnsw")
    except InvalidArgumentError as exc:
        raise InvalidArgumentError("Failed to parse hnsw parameters from segment metadata") from exc
    return hnsw


def _is_default_function(function: Json | None) -> bool:
    """Rust's ``is_embedding_function_default``: absent, unknown or the one named default."""
    if function is None or function["type"] == "unknown":
        return True
    return bool(function["type"] == "known" and function["name"] == "default")


# ---------------------------------------------------------------------------- schema


def default_schema(hnsw: Json | None = None, function: Json | None = None) -> Json:
    """Rust's ``Schema::new_default(Hnsw)``, with the vector index settings of ``hnsw`` (a
    complete HNSW configuration) and ``function`` in both vector indexes."""
    hnsw = hnsw or HNSW_DEFAULTS
    vector: Json = {"space": hnsw["space"]}
    if function is not None:
        vector["embedding_function"] = copy.deepcopy(function)
    vector["hnsw"] = {k: hnsw[k] for k in SCHEMA_HNSW_KEYS}
    embedding = {**copy.deepcopy(vector), "source_key": DOCUMENT_KEY}
    embedding["hnsw"] = embedding.pop("hnsw")  # keep Rust's field order: source_key before hnsw
    return {
        "defaults": {
            "string": {
                "fts_index": _index(False),
                "string_inverted_index": _index(True),
            },
            "float_list": {"vector_index": _index(False, vector)},
            "sparse_vector": {
                "sparse_vector_index": _index(
                    False, {"embedding_function": {"type": "unknown"}, "bm25": False}
                )
            },
            "int": {"int_inverted_index": _index(True)},
            "float": {"float_inverted_index": _index(True)},
            "bool": {"bool_inverted_index": _index(True)},
        },
        "keys": {
            DOCUMENT_KEY: {
                "string": {"fts_index": _index(True), "string_inverted_index": _index(False)}
            },
            EMBEDDING_KEY: {"float_list": {"vector_index": _index(True, embedding)}},
        },
    }


def _index(enabled: bool, config: Json | None = None) -> Json:
    return {"enabled": enabled, "config": {} if config is None else config}


def reconcile(schema: Json | None, internal: Json) -> Json:
    """The schema a new collection gets from the request's (parsed) ``schema`` and its internal
    configuration (Rust: ``Schema::reconcile_schema_and_config`` on a local server)."""
    config_default = is_default_configuration(internal)
    if schema is not None and not is_default(schema) and not config_default:
        raise InvalidArgumentError("Cannot set both collection config and schema simultaneously")
    merged = _merge_with_defaults(schema)
    if _sparse_index_enabled(merged):
        raise InvalidArgumentError(
            "Invalid schema input: Sparse vector indexing is not enabled in local"
        )
    if not config_default:
        return default_schema(internal["hnsw"], internal["embedding_function"])
    if is_default(merged):
        return default_schema(function=internal["embedding_function"])
    return merged


def from_configuration(configuration: Json) -> Json:
    """The schema of a collection stored before schemas were kept (Rust: ``Schema::try_from``
    on its configuration, as its read path does)."""
    hnsw = _hnsw({k: v for k, v in (configuration.get("hnsw") or {}).items() if v is not None})
    return default_schema(hnsw, embedding_function(configuration.get("embedding_function")))


def to_configuration(schema: Json) -> Json:
    """``configuration_json`` as derived from the schema's vector index (``#embedding``, else the
    defaults), the way Chroma's read path regenerates it."""
    vector = _vector_index(schema, EMBEDDING_KEY) or _vector_index(schema, None)
    config = (vector or {}).get("config", {})
    hnsw = {**HNSW_DEFAULTS, **config.get("hnsw", {})}
    hnsw["space"] = config.get("space", HNSW_DEFAULTS["space"])
    return {
        "hnsw": {k: hnsw[k] for k in CONFIGURATION_HNSW_KEYS},
        "spann": None,
        "embedding_function": copy.deepcopy(config.get("embedding_function")),
    }


def updated(schema: Json, update: Json) -> Json:
    """``modify(configuration=...)`` applied to a schema (Rust: ``Schema::update``): HNSW
    parameters go into both vector indexes' ``hnsw``; a SPANN update has nothing to change on
    a single-node collection; an embedding function replaces the one in both indexes."""
    hnsw = _object_or_none(update.get("hnsw"), "new_configuration.hnsw")
    spann = _object_or_none(update.get("spann"), "new_configuration.spann")
    if hnsw is not None and spann is not None:
        raise InvalidArgumentError("Multiple vector index configurations provided")
    function = embedding_function(update.get("embedding_function"))
    result = copy.deepcopy(schema)
    current_space = to_configuration(schema)["hnsw"]["space"]
    for changes in (hnsw or {}, spann or {}):
        if changes.get("space") not in (None, current_space):
            raise InvalidArgumentError(
                "Changing the distance space of a collection is not supported"
            )
    changes = {k: v for k, v in (hnsw or {}).items() if k in UPDATABLE_HNSW and v is not None}
    _check_hnsw(changes, "hnsw")
    for key in (EMBEDDING_KEY, None):
        vector = _vector_index(result, key)
        if vector is None:
            continue
        if changes and "hnsw" in vector["config"]:
            vector["config"]["hnsw"].update(changes)
        if function is not None:
            vector["config"]["embedding_function"] = copy.deepcopy(function)
    return result


def _vector_index(schema: Json, key: str | None) -> Json | None:
    types = schema["defaults"] if key is None else schema["keys"].get(key, {})
    index: Json | None = types.get("float_list", {}).get("vector_index")
    return index


# ---------------------------------------------------------------------------- defaults, merge


def is_default(schema: Json) -> bool:
    """Rust's ``Schema::is_default``: nothing set beyond what a new collection has anyway."""
    if set(schema["keys"]) - {DOCUMENT_KEY, EMBEDDING_KEY} or schema.get("cmek") is not None:
        return False
    return (
        _defaults_are_default(schema["defaults"])
        and _embedding_is_default(schema["keys"].get(EMBEDDING_KEY))
        and _document_is_default(schema["keys"].get(DOCUMENT_KEY))
    )


def _enabled(types: Json, value_type: str, index: str) -> bool | None:
    found = types.get(value_type, {}).get(index)
    return None if found is None else bool(found["enabled"])


def _defaults_are_default(types: Json) -> bool:
    for value_type, index in (
        ("string", "string_inverted_index"),
        ("int", "int_inverted_index"),
        ("float", "float_inverted_index"),
        ("bool", "bool_inverted_index"),
    ):
        if _enabled(types, value_type, index) is False:
            return False
    if _enabled(types, "string", "fts_index") or _enabled(types, "float_list", "vector_index"):
        return False
    vector = types.get("float_list", {}).get("vector_index")
    if vector is not None and not _vector_config_is_default(vector["config"], None):
        return False
    sparse = types.get("sparse_vector", {}).get("sparse_vector_index")
    if sparse is not None:
        config = sparse["config"]
        if sparse["enabled"] or "source_key" in config or config.get("bm25", False):
            return False
        if not _is_default_function(config.get("embedding_function")):
            return False
    return True


def _embedding_is_default(types: Json | None) -> bool:
    if types is None:
        return True
    if set(types) - {"float_list"}:
        return False
    vector = types.get("float_list", {}).get("vector_index")
    if vector is None:
        return True
    return bool(vector["enabled"]) and _vector_config_is_default(vector["config"], DOCUMENT_KEY)


def _document_is_default(types: Json | None) -> bool:
    if types is None:
        return True
    if set(types) - {"string"}:
        return False
    return _enabled(types, "string", "fts_index") is not False and not _enabled(
        types, "string", "string_inverted_index"
    )


def _vector_config_is_default(config: Json, source_key: str | None) -> bool:
    if config.get("space", "l2") != "l2" or config.get("source_key") != source_key:
        return False
    if not _is_default_function(config.get("embedding_function")):
        return False
    hnsw, spann = config.get("hnsw"), config.get("spann")
    if hnsw is not None and spann is not None:
        return False
    if hnsw is not None:
        return all(
            hnsw.get(k, HNSW_DEFAULTS[k]) == HNSW_DEFAULTS[k]
            for k in SCHEMA_HNSW_KEYS
            if k != "num_threads"  # host-dependent, so never a user's choice (as in Rust)
        )
    return spann is None or all(spann[k] == SPANN_DEFAULTS[k] for k in spann)


def _merge_with_defaults(schema: Json | None) -> Json:
    """Rust's ``reconcile_with_defaults`` (HNSW): the sent schema over the defaults, field by
    field; keys other than ``#document``/``#embedding`` are kept as sent."""
    defaults = default_schema()
    if schema is None:
        return defaults
    merged: Json = {"defaults": _merge_types(defaults["defaults"], schema["defaults"]), "keys": {}}
    merged["keys"] = dict(defaults["keys"])
    for key, types in schema["keys"].items():
        base = merged["keys"].get(key)
        merged["keys"][key] = copy.deepcopy(types) if base is None else _merge_types(base, types)
    if schema.get("cmek") is not None:
        merged["cmek"] = schema["cmek"]
    return merged


def _merge_types(base: Json, sent: Json) -> Json:
    result = copy.deepcopy(base)
    for value_type, indexes in sent.items():
        target = result.setdefault(value_type, {})
        for name, index in indexes.items():
            current = target.get(name)
            if current is None:
                target[name] = copy.deepcopy(index)
            elif name == "vector_index":
                target[name] = {
                    "enabled": index["enabled"],
                    "config": _merge_vector(current["config"], index["config"]),
                }
            elif name == "sparse_vector_index":
                target[name] = {
                    "enabled": index["enabled"],
                    "config": {**current["config"], **copy.deepcopy(index["config"])},
                }
            else:
                target[name] = copy.deepcopy(index)
        vector = target.get("vector_index")
        if value_type == "float_list" and vector is not None and "hnsw" in vector["config"]:
            _check_schema_hnsw(vector["config"]["hnsw"])
    return result


def _merge_vector(base: Json, sent: Json) -> Json:
    """A local server's vector index is HNSW: a sent ``spann`` block is dropped."""
    merged = {k: copy.deepcopy(v) for k, v in sent.items() if k not in ("hnsw", "spann")}
    for key in ("space", "embedding_function", "source_key"):
        if key not in merged and key in base:
            merged[key] = copy.deepcopy(base[key])
    if "hnsw" in base or "hnsw" in sent:
        merged["hnsw"] = {**base.get("hnsw", {}), **sent.get("hnsw", {})}
    return {
        k: merged[k] for k in ("space", "embedding_function", "source_key", "hnsw") if k in merged
    }


def _check_schema_hnsw(hnsw: Json) -> None:
    for key in ("batch_size", "sync_threshold"):
        if key in hnsw and hnsw[key] < 2:
            raise InvalidArgumentError(
                f"Invalid HNSW configuration: {key}: expected at least 2, got {hnsw[key]}"
            )


def _sparse_index_enabled(schema: Json) -> bool:
    every = [schema["defaults"], *schema["keys"].values()]
    return any(_enabled(types, "sparse_vector", "sparse_vector_index") for types in every)


def _object_or_none(value: object, what: str) -> Json | None:
    if value is not None and not isinstance(value, dict):
        raise InvalidArgumentError(f"Expected {what} to be an object or null, got {value}")
    return value
