"""Metadata: what a record's or a collection's metadata may hold (Chroma's rules)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chroma_serverless.domain import sparse_vectors
from chroma_serverless.domain.filters import check_scalar, is_scalar
from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.types import SparseVector

if TYPE_CHECKING:
    from chroma_serverless.types import Metadata

MAX_KEY = 256  # metadata keys become column names


def validate_metadata(
    metadata: object, what: str = "metadata", allow_none: bool = False, sparse: bool = False
) -> Any:
    """Check a metadata dict; ``{}`` becomes ``None``. ``allow_none`` admits ``None`` values;
    ``sparse`` (records) admits sparse vectors, returned as :class:`SparseVector` values."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidArgumentError(f"Expected {what} to be a dict or None, got {metadata}")
    if sparse and any(sparse_vectors.is_tagged(v) for v in metadata.values()):
        metadata = {
            k: sparse_vectors.parse(v, f"{what} value for key {k!r}")
            if sparse_vectors.is_tagged(v)
            else v
            for k, v in metadata.items()
        }
    for key, value in metadata.items():
        check_metadata_key(key, what)
        if (value is None and allow_none) or isinstance(value, SparseVector):
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
                f"Expected {what} value for key {key!r} to be a str, int, float, bool, a list "
                f"of those{' or a sparse vector' if sparse else ''}, got {value}"
            )
    return metadata or None


def check_metadata_key(key: str, what: str = "metadata") -> None:
    if not key or key.startswith("#") or key == "chroma:document" or len(key) > MAX_KEY:
        raise InvalidArgumentError(
            f"Expected {what} key to be a non-empty str of at most {MAX_KEY} characters not "
            f"starting with '#', got {key[:MAX_KEY]!r}"
        )


def validate_collection_metadata(metadata: object, field: str) -> Metadata | None:
    """A collection's metadata as sent in ``field``; ``{}`` is refused as Chroma's server does."""
    if metadata == {}:
        raise InvalidArgumentError(f"Validation error: {field}: Metadata cannot be empty")
    return validate_metadata(metadata, "collection metadata")  # type: ignore[no-any-return]
