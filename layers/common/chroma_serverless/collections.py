"""Collections: name rules, metadata validation, configuration and the wire JSON."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.filters import check_scalar, is_scalar
from chroma_serverless.types import SPACES

if TYPE_CHECKING:
    from chroma_serverless.types import Collection, Metadata

MAX_KEY = 256  # metadata keys become column names
NAME_RULE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]\Z")

HNSW_DEFAULTS: dict[str, Any] = {
    "space": "l2",
    "ef_construction": 100,
    "ef_search": 100,
    "max_neighbors": 16,
    "resize_factor": 1.2,
    "sync_threshold": 1000,
}
# Legacy collection metadata keys Chroma honours at create time.
LEGACY_HNSW_KEYS = {
    "hnsw:space": "space",
    "hnsw:construction_ef": "ef_construction",
    "hnsw:search_ef": "ef_search",
    "hnsw:M": "max_neighbors",
    "hnsw:resize_factor": "resize_factor",
    "hnsw:sync_threshold": "sync_threshold",
}
SPANN_TO_HNSW = {
    "space": "space",
    "ef_construction": "ef_construction",
    "ef_search": "ef_search",
    "max_neighbors": "max_neighbors",
}
UPDATABLE_HNSW = ("ef_search", "resize_factor", "sync_threshold")
DEFAULT_EMBEDDING_FUNCTION = {"type": "known", "name": "default", "config": {}}
# Embedding functions the official client (1.5.9) knows by name. Collections may name any of
# them (the client embeds with most of them itself); this server embeds with "default" and
# "onnx_mini_lm_l6_v2". Other names are unknown: a 400 at create time.
KNOWN_EMBEDDING_FUNCTIONS = frozenset(
    {
        "amazon_bedrock",
        "baseten",
        "chroma-cloud-qwen",
        "chroma_langchain",
        "cloudflare_workers_ai",
        "cohere",
        "default",
        "google_gemini",
        "google_genai",
        "google_generative_ai",
        "google_palm",
        "google_vertex",
        "huggingface",
        "huggingface_server",
        "instructor",
        "jina",
        "mistral",
        "morph",
        "nomic",
        "ollama",
        "onnx_mini_lm_l6_v2",
        "open_clip",
        "openai",
        "perplexity",
        "roboflow",
        "sentence_transformer",
        "text2vec",
        "together_ai",
        "voyageai",
        "bm25",
        "chroma-cloud-splade",
        "chroma_bm25",
        "fastembed_sparse",
        "huggingface_sparse",
    }
)
# The IVF index's search knob is the number of partitions probed. Chroma's ``ef_search`` scales
# it (default 100 = the policy's nprobes), and SPANN's ``search_nprobe`` is the same idea, kept
# as ``ef_search = search_nprobe * EF_PER_NPROBE`` (at default settings: nprobes = search_nprobe).
EF_PER_NPROBE = 5


def _spann_as_hnsw(spann: dict[str, Any]) -> dict[str, Any]:
    hnsw = {SPANN_TO_HNSW[k]: v for k, v in spann.items() if k in SPANN_TO_HNSW}
    nprobe = spann.get("search_nprobe")
    if isinstance(nprobe, int) and not isinstance(nprobe, bool) and nprobe > 0:
        hnsw["ef_search"] = nprobe * EF_PER_NPROBE
    return hnsw


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RULE.match(name) or ".." in name:
        raise InvalidArgumentError(
            "Validation error: name: Expected a name containing 3-512 characters from "
            "[a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. "
            f"Got: {name}"
        )
    return name


def validate_metadata(metadata: object, what: str = "metadata", allow_none: bool = False) -> Any:
    """Check a metadata dict; ``{}`` becomes ``None``. ``allow_none`` admits ``None`` values."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidArgumentError(f"Expected {what} to be a dict or None, got {metadata}")
    for key, value in metadata.items():
        if not key or key.startswith("#") or key == "chroma:document" or len(key) > MAX_KEY:
            raise InvalidArgumentError(
                f"Expected {what} key to be a non-empty str of at most {MAX_KEY} characters not "
                f"starting with '#', got {key[:MAX_KEY]!r}"
            )
        if value is None and allow_none:
            continue
        if isinstance(value, list):
            if not value or not all(is_scalar(x) and type(x) is type(value[0]) for x in value):
                raise InvalidArgumentError(
                    f"Expected {what} list value for key {key!r} to be a non-empty list of str, "
                    f"int, float or bool, all of one type, got {value}"
                )
            for item in value:
                check_scalar(item, f"{what} value for key {key!r}")
        elif is_scalar(value):
            check_scalar(value, f"{what} value for key {key!r}")
        else:
            raise InvalidArgumentError(
                f"Expected {what} value for key {key!r} to be a str, int, float, bool or a list "
                f"of those, got {value}"
            )
    return metadata or None


def validate_collection_metadata(metadata: object, field: str) -> Metadata | None:
    """A collection's metadata as sent in ``field``; ``{}`` is refused as Chroma's server does."""
    if metadata == {}:
        raise InvalidArgumentError(f"Validation error: {field}: Metadata cannot be empty")
    return validate_metadata(metadata, "collection metadata")  # type: ignore[no-any-return]


def new_configuration(
    configuration: dict[str, Any] | None, metadata: Metadata | None
) -> dict[str, Any]:
    """The stored ``configuration_json`` for a new collection.

    As on Chroma's single-node server a requested ``spann`` index is served by ``hnsw``; the space
    comes from ``configuration.hnsw|spann.space``, else ``hnsw:space`` metadata, else ``l2``.
    """
    configuration = _dict_or_none(configuration, "configuration") or {}
    hnsw = dict(HNSW_DEFAULTS)
    for legacy, key in LEGACY_HNSW_KEYS.items():
        if metadata and legacy in metadata:
            hnsw[key] = metadata[legacy]
    spann = _dict_or_none(configuration.get("spann"), "configuration.spann") or {}
    hnsw.update(_spann_as_hnsw(spann))
    sent = _dict_or_none(configuration.get("hnsw"), "configuration.hnsw") or {}
    hnsw.update({k: v for k, v in sent.items() if k in HNSW_DEFAULTS})
    if hnsw["space"] not in SPACES:
        raise InvalidArgumentError(
            f"Expected space to be one of {', '.join(SPACES)}, got {hnsw['space']}"
        )
    for key in HNSW_DEFAULTS:
        if key != "space" and (
            isinstance(hnsw[key], bool) or not isinstance(hnsw[key], int | float) or hnsw[key] <= 0
        ):
            raise InvalidArgumentError(f"Expected hnsw {key} to be a positive number")
    embedding_function = validate_embedding_function(configuration.get("embedding_function"))
    return {"hnsw": hnsw, "spann": None, "embedding_function": embedding_function}


def validate_embedding_function(value: object) -> dict[str, Any]:
    """The stored ``embedding_function``; absent means Chroma's default (MiniLM), which is
    also what the official client falls back to for a collection without one."""
    function = _dict_or_none(value, "configuration.embedding_function")
    if function is None:
        return dict(DEFAULT_EMBEDDING_FUNCTION)
    kind = function.get("type")
    if kind in ("legacy", "unknown"):
        return function
    if kind != "known":
        raise InvalidArgumentError(
            f"Expected embedding_function.type to be known, legacy or unknown, got {kind}"
        )
    if function.get("name") not in KNOWN_EMBEDDING_FUNCTIONS:
        raise InvalidArgumentError(f"Unknown embedding function: {function.get('name')}")
    return function


def updated_configuration(
    current: dict[str, Any], update: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Merge a ``modify(configuration=...)`` into the stored configuration."""
    update = _dict_or_none(update, "new_configuration")
    if update is None:
        return None
    hnsw = dict(current.get("hnsw") or HNSW_DEFAULTS)
    for index in ("hnsw", "spann"):
        changes = _dict_or_none(update.get(index), f"new_configuration.{index}") or {}
        if index == "spann":
            changes = _spann_as_hnsw(changes)
        if "space" in changes and changes["space"] != hnsw.get("space"):
            raise InvalidArgumentError(
                "Changing the distance space of a collection is not supported"
            )
        hnsw.update({k: v for k, v in changes.items() if k in UPDATABLE_HNSW})
    merged = {**current, "hnsw": hnsw}
    if update.get("embedding_function") is not None:
        merged["embedding_function"] = validate_embedding_function(update["embedding_function"])
    return merged


def _dict_or_none(value: object, what: str) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise InvalidArgumentError(f"Expected {what} to be an object or null, got {value}")
    return value


def to_json(collection: Collection) -> dict[str, Any]:
    return {
        "id": collection.id,
        "name": collection.name,
        "tenant": collection.tenant,
        "database": collection.database,
        "metadata": collection.metadata,
        "configuration_json": collection.configuration,
        "schema": None,
        "dimension": collection.dimension,
        "log_position": 0,
        "version": 0,
    }
