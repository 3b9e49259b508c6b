"""Reading a ``schema`` sent with a create request, with Chroma's rules.

Two layers, as on Chroma's server: the JSON must have the shape of Rust's ``Schema`` (unknown
value types and index names are ignored, unknown fields inside an index config are not: a 422
``ChromaError``, like any body Chroma cannot deserialize), then it must pass
``validate_schema`` (rust/types/src/validators.rs: a 400 ``InvalidArgumentError`` worded as
Chroma words it). :func:`parse` returns the schema normalised: canonical names, nulls dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chroma_serverless.domain.schema.indexes import (
    CMEK_GCP,
    DOCUMENT_KEY,
    EMBEDDING_KEY,
    SCHEMA_HNSW_KEYS,
    SPANN_DEFAULTS,
)
from chroma_serverless.errors import InvalidArgumentError, InvalidRequestBodyError
from chroma_serverless.types import SPACES

if TYPE_CHECKING:
    from chroma_serverless.domain.schema.configuration import Json

Parser = Callable[[object, str], Any]


def parse(raw: object) -> Json | None:
    if raw is None:
        return None
    schema = _object(raw, "schema")
    for field in ("defaults",):
        if schema.get(field) is None:
            _fail("schema", f"missing field `{field}`")
    keys = schema.get("keys", schema.get("key_overrides"))
    if keys is None:
        _fail("schema", "missing field `keys`")
    parsed: Json = {
        "defaults": _value_types(schema["defaults"], "schema.defaults"),
        "keys": {
            str(k): _value_types(v, f"schema.keys.{k}")
            for k, v in _object(keys, "schema.keys").items()
        },
    }
    if schema.get("cmek") is not None:
        parsed["cmek"] = _cmek(schema["cmek"])
    validate(parsed)
    return parsed


def validate(schema: Json) -> None:
    """Chroma's ``validate_schema``."""
    defaults = schema["defaults"]
    if _on(defaults, "float_list", "vector_index"):
        _invalid(
            "Vector index cannot be enabled by default. It can only be enabled on #embedding field."
        )
    vector = defaults.get("float_list", {}).get("vector_index")
    if vector is not None and "hnsw" in vector["config"] and "spann" in vector["config"]:
        _invalid("Both spann and hnsw config cannot be present at the same time.")
    if _on(defaults, "sparse_vector", "sparse_vector_index"):
        _invalid(
            "Sparse vector index cannot be enabled by default. Please enable sparse vector index "
            "on specific keys."
        )
    if _on(defaults, "string", "fts_index"):
        _invalid(
            "Full text search / regular expression index cannot be enabled by default. It can "
            "only be enabled on #document field."
        )
    for key, types in schema["keys"].items():
        _validate_key(key, types)


def _validate_key(key: str, types: Json) -> None:
    if key.startswith("#") and key not in (DOCUMENT_KEY, EMBEDDING_KEY):
        _invalid(
            "key cannot begin with '#'. Keys starting with '#' are reserved for system use: " + key
        )
    if key == DOCUMENT_KEY and set(types) - {"string"}:
        _invalid(f"Document field cannot have any value types other than string: {key}")
    if key == EMBEDDING_KEY and set(types) - {"float_list"}:
        _invalid(f"Embedding field cannot have any value types other than float_list: {key}")
    vector = types.get("float_list", {}).get("vector_index")
    if vector is not None:
        if vector["enabled"] and key != EMBEDDING_KEY:
            _invalid(f"Vector index can only be enabled on #embedding field: {key}")
        if vector["config"].get("source_key", DOCUMENT_KEY) != DOCUMENT_KEY:
            _invalid("Vector index can only source from #document")
    sparse = types.get("sparse_vector", {}).get("sparse_vector_index")
    if sparse is not None:
        config = sparse["config"]
        if sparse["enabled"] and "source_key" in config and "embedding_function" not in config:
            _invalid(
                "If source_key is provided then embedding_function must also be provided since "
                "there is no default embedding function."
            )
        source_key = config.get("source_key", DOCUMENT_KEY)
        if source_key.startswith("#") and source_key != DOCUMENT_KEY:
            _invalid(
                "source_key cannot begin with '#'. The only valid key starting with '#' is "
                "Key.DOCUMENT or '#document'."
            )
    if _on(types, "string", "fts_index") and key != DOCUMENT_KEY:
        _invalid(
            "Full text search / regular expression index can only be enabled on #document "
            f"field: {key}"
        )
    if _on(types, "string", "string_inverted_index") and key == DOCUMENT_KEY:
        _invalid(f"String inverted index can not be enabled on #document key: {key}")


def _on(types: Json, value_type: str, index: str) -> bool:
    found = types.get(value_type, {}).get(index)
    return found is not None and bool(found["enabled"])


def _invalid(message: str) -> None:
    raise InvalidArgumentError(f"Validation error: schema: {message}")


# ---------------------------------------------------------------------------- shape


def _fail(path: str, problem: str) -> Any:
    raise InvalidRequestBodyError(
        f"Failed to deserialize the JSON body into the target type: {path}: {problem}"
    )


def _object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(path, f"invalid type: expected a map, got {value!r}")
    return value  # type: ignore[return-value]


def _fields(value: object, path: str, parsers: dict[str, Parser]) -> Json:
    """A struct with ``deny_unknown_fields`` whose fields are all optional."""
    raw = _object(value, path)
    unknown = sorted(set(raw) - set(parsers))
    if unknown:
        _fail(path, f"unknown field `{unknown[0]}`, expected one of {sorted(parsers)}")
    return {k: parsers[k](raw[k], f"{path}.{k}") for k in parsers if raw.get(k) is not None}


def _int(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _fail(path, f"invalid value: expected a non-negative integer, got {value!r}")
    return value  # type: ignore[return-value]


def _float(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(path, f"invalid type: expected a number, got {value!r}")
    return value  # type: ignore[return-value]


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        _fail(path, f"invalid type: expected a boolean, got {value!r}")
    return value  # type: ignore[return-value]


def _str(value: object, path: str) -> str:
    if not isinstance(value, str):
        _fail(path, f"invalid type: expected a string, got {value!r}")
    return value  # type: ignore[return-value]


def _choice(*choices: str) -> Parser:
    def parse_choice(value: object, path: str) -> str:
        if value not in choices:
            _fail(path, f"unknown variant `{value}`, expected one of {list(choices)}")
        return value  # type: ignore[return-value]

    return parse_choice


def _function(value: object, path: str) -> Json:
    raw = _object(value, path)
    kind = raw.get("type")
    if kind in ("legacy", "unknown"):
        return {"type": kind}
    if kind != "known":
        _fail(path, f"unknown variant `{kind}`, expected one of ['legacy', 'known', 'unknown']")
    for field in ("name", "config"):
        if field not in raw:
            _fail(path, f"missing field `{field}`")
    return {"type": "known", "name": _str(raw["name"], f"{path}.name"), "config": raw["config"]}


def _cmek(value: object) -> Json:
    raw = _object(value, "schema.cmek")
    if set(raw) != {"gcp"}:
        _fail("schema.cmek", f"unknown variant, expected `gcp`, got {sorted(raw)}")
    resource = _str(raw["gcp"], "schema.cmek.gcp")
    if not CMEK_GCP.match(resource):
        _invalid(f"CMEK does not match expected pattern: {resource}")
    return {"gcp": resource}


HNSW: dict[str, Parser] = {k: _int for k in SCHEMA_HNSW_KEYS} | {"resize_factor": _float}
SPANN: dict[str, Parser] = {
    k: _int if isinstance(v, int) else _float for k, v in SPANN_DEFAULTS.items()
}
SPANN["quantize"] = _choice("none", "four_bit_rabit_q_with_u_search")


def _config(parsers: dict[str, Parser]) -> Parser:
    return lambda value, path: _fields(value, path, parsers)


CONFIGS: dict[str, Parser] = {
    "fts_index": _config({"algorithm": _choice("trigram", "token_bitmap")}),
    "string_inverted_index": _config({}),
    "vector_index": _config(
        {
            "space": _choice(*SPACES),
            "embedding_function": _function,
            "source_key": _str,
            "hnsw": _config(HNSW),
            "spann": _config(SPANN),
        }
    ),
    "sparse_vector_index": _config(
        {
            "embedding_function": _function,
            "source_key": _str,
            "bm25": _bool,
            "algorithm": _choice("wand", "max_score"),
        }
    ),
    "int_inverted_index": _config({}),
    "float_inverted_index": _config({}),
    "bool_inverted_index": _config({}),
}
VALUE_TYPES = {
    "string": ("fts_index", "string_inverted_index"),
    "float_list": ("vector_index",),
    "sparse_vector": ("sparse_vector_index",),
    "int": ("int_inverted_index",),
    "float": ("float_inverted_index",),
    "bool": ("bool_inverted_index",),
}


def _value_types(value: object, path: str) -> Json:
    """Known value types (also under their ``#`` aliases) and their known indexes (also
    ``$``-prefixed); anything else is ignored, as serde does for these structs."""
    raw = _object(value, path)
    parsed: Json = {}
    for value_type, indexes in VALUE_TYPES.items():
        found = raw.get(value_type, raw.get("#" + value_type))
        if found is None:
            continue
        entry = _object(found, f"{path}.{value_type}")
        parsed[value_type] = {}
        for name in indexes:
            index = entry.get(name, entry.get("$" + name))
            if index is not None:
                parsed[value_type][name] = _index(index, f"{path}.{value_type}.{name}", name)
    return parsed


def _index(value: object, path: str, name: str) -> Json:
    raw = _object(value, path)
    for field in ("enabled", "config"):
        if raw.get(field) is None:
            _fail(path, f"missing field `{field}`")
    return {
        "enabled": _bool(raw["enabled"], f"{path}.enabled"),
        "config": CONFIGS[name](raw["config"], f"{path}.config"),
    }
