"""A collection's ``schema``: Chroma's index settings per value type and per key.

Chroma 1.x describes a collection twice: ``configuration_json`` (hnsw, spann, embedding function)
and ``schema`` (which indexes exist for each value type, by default and for special keys such as
``#embedding``). The official client reads both: it resolves the embedding function from either,
checks them against each other, and edits the schema itself after ``modify(configuration=...)``.
So both must be present and agree, exactly as on Chroma's single-node server, whose rules
(rust/types/src/collection_schema.rs, collection_configuration.rs and the local frontend, where the
vector index is always HNSW) this module follows:

- create: the configuration becomes HNSW settings (``configuration.py``); a sent schema
  (validated by ``validation.py``) is merged over the defaults; a non-default configuration and
  a non-default schema together are an error; otherwise whichever is not default wins;
- the stored ``configuration_json`` is always derived from the schema's ``#embedding`` vector index;
- modify: HNSW parameters and the embedding function are written into the schema's vector indexes.

Schemas are kept as the JSON Chroma sends and returns (plain dicts), as normalised by
``validation.parse``.
"""

from __future__ import annotations

import copy
import re

from chroma_serverless.domain.schema.configuration import (
    HNSW_DEFAULTS,
    Json,
    check_hnsw,
    embedding_function,
    hnsw_configuration,
    is_default_configuration,
    is_default_function,
    object_or_none,
)
from chroma_serverless.errors import InvalidArgumentError

DOCUMENT_KEY = "#document"
EMBEDDING_KEY = "#embedding"

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
    if not config_default:
        return default_schema(internal["hnsw"], internal["embedding_function"])
    if is_default(merged):
        return default_schema(function=internal["embedding_function"])
    return merged


def from_configuration(configuration: Json) -> Json:
    """The schema of a collection stored before schemas were kept (Rust: ``Schema::try_from``
    on its configuration, as its read path does)."""
    hnsw = hnsw_configuration(
        {k: v for k, v in (configuration.get("hnsw") or {}).items() if v is not None}
    )
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
    hnsw = object_or_none(update.get("hnsw"), "new_configuration.hnsw")
    spann = object_or_none(update.get("spann"), "new_configuration.spann")
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
    check_hnsw(changes, "hnsw")
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
        if not is_default_function(config.get("embedding_function")):
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
    if not is_default_function(config.get("embedding_function")):
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


# ---------------------------------------------------------------------------- reading
# What a collection's schema allows a read (Rust: Schema::is_metadata_type_index_enabled and
# its callers): a filter needs the inverted index of its key and value type, a sparse knn
# needs a sparse vector index on its key; a key without its own setting uses the defaults.

# Value types as Chroma's errors name them (Rust's MetadataValueType), with the schema's value
# type and index for each.
VALUE_TYPES = {
    "Bool": ("bool", "bool_inverted_index"),
    "Int": ("int", "int_inverted_index"),
    "Float": ("float", "float_inverted_index"),
    "Str": ("string", "string_inverted_index"),
    "SparseVector": ("sparse_vector", "sparse_vector_index"),
}


def sparse_indexes(schema: Json | None) -> dict[str, bool]:
    """The keys with an enabled sparse vector index, each with its ``bm25`` setting."""
    found = {}
    for key, types in (schema or {}).get("keys", {}).items():
        index = types.get("sparse_vector", {}).get("sparse_vector_index")
        if index is not None and index["enabled"]:
            found[key] = bool(index["config"].get("bm25", False))
    return found


def check_indexed(schema: Json | None, key: str, value_type: str) -> None:
    """Raise Chroma's error if ``key``'s values of ``value_type`` (a ``VALUE_TYPES`` name)
    are not indexed, so cannot be filtered on (or searched, for sparse vectors)."""
    if schema is None:
        return
    kind, index = VALUE_TYPES[value_type]
    for types in (schema["keys"].get(key), schema["defaults"]):
        found = None if types is None else types.get(kind, {}).get(index)
        if found is not None:
            if not found["enabled"]:
                raise InvalidArgumentError(
                    f"Cannot filter using metadata key '{key}' with type '{value_type}' because "
                    "indexing is disabled"
                )
            return


def full_text_search_enabled(schema: Json | None) -> bool:
    """Whether ``#document`` filters may run (its ``fts_index``, enabled by default)."""
    if schema is None:
        return True
    return _enabled(schema["keys"].get(DOCUMENT_KEY, {}), "string", "fts_index") is not False
