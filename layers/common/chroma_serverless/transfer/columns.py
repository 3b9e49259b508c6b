"""Which columns of a file hold a record's id, embedding, document, uri and metadata, and their
conversion to a checked :class:`~chroma_serverless.columns.ColumnBatch`.

Metadata comes from one column holding a record's whole metadata (a struct with a child per key,
a map, or JSON text) or from plain columns, one key each. Typed columns keep their types: any
integer is an int, any float a float, lists stay lists. A missing value (null, a float NaN as
pandas writes for "no value", an empty list) means the record lacks the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from chroma_serverless.domain import columns
from chroma_serverless.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from chroma_serverless.domain.columns import ColumnBatch, MetadataColumns

ID, EMBEDDING, DOCUMENT, URI, METADATA = "id", "embedding", "document", "uri", "metadata"
# Field metadata of a metadata struct child whose values are JSON text: the export writes a key
# whose values have several types this way, since a Parquet column has one type.
ENCODING, JSON = b"chroma_serverless.encoding", b"json"


@dataclass(frozen=True)
class ColumnMap:
    """Column names as given; ``None`` takes the conventional name (``id``, ``embedding``,
    ``document``, ``uri``, ``metadata``) when the file has it. ``metadata_columns`` lists plain
    columns to keep as metadata keys; by default, with no whole-metadata column, every column not
    mapped to something else is one."""

    id: str | None = None
    embedding: str | None = None
    document: str | None = None
    uri: str | None = None
    metadata: str | None = None
    metadata_columns: tuple[str, ...] | None = None

    @property
    def named(self) -> list[str]:
        """The columns named explicitly."""
        given = (self.id, self.embedding, self.document, self.uri, self.metadata)
        return [n for n in (*given, *(self.metadata_columns or ())) if n is not None]

    def resolve(self, names: Sequence[str]) -> Columns:
        """The columns of a file with ``names``; a column named explicitly must be there."""
        for name in self.named:
            _require(name, names)

        def chosen(given: str | None, convention: str) -> str | None:
            return given if given is not None else (convention if convention in names else None)

        metadata = self.metadata
        if metadata is None and self.metadata_columns is None and METADATA in names:
            metadata = METADATA
        found = Columns(
            self.id or ID,
            chosen(self.embedding, EMBEDDING),
            chosen(self.document, DOCUMENT),
            chosen(self.uri, URI),
            metadata,
            self.metadata_columns,
        )
        _require(found.id, names)
        if found.keys is None:  # every other column, unless there is a metadata column
            rest = () if metadata is not None else (n for n in names if n not in found.names)
            found = dataclasses.replace(found, keys=tuple(rest))
        return found


@dataclass(frozen=True)
class Columns:
    """The resolved columns of one file (``None``: the file has none)."""

    id: str
    embedding: str | None
    document: str | None
    uri: str | None
    metadata: str | None
    keys: tuple[str, ...] | None  # None (JSON objects only): every field not mapped otherwise

    @property
    def names(self) -> list[str]:
        fields = (
            self.id,
            self.embedding,
            self.document,
            self.uri,
            self.metadata,
            *(self.keys or ()),
        )
        return list(dict.fromkeys(f for f in fields if f is not None))

    def from_table(self, data: pa.Table | pa.RecordBatch) -> ColumnBatch:
        def column(name: str | None) -> pa.Array | None:
            if name is None:
                return None
            values = data.column(name)
            return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values

        metadata: MetadataColumns = {}
        whole = column(self.metadata)
        if whole is not None:
            _whole_metadata(metadata, whole)
        for key in self.keys or ():
            _add_key(metadata, key, column(key))
        embeddings = column(self.embedding)
        return columns.checked(
            _strings(column(self.id), "id"),
            None if embeddings is None else _vectors(embeddings),
            _strings(column(self.document), "document"),
            _strings(column(self.uri), "uri"),
            metadata,
        )

    def from_rows(self, rows: Sequence[dict[str, Any]]) -> ColumnBatch:
        """Records from JSON objects (JSONL lines), where a key may be absent from some."""
        mapped = {self.id, self.embedding, self.document, self.uri, self.metadata}

        def values(name: str | None) -> list[Any] | None:
            if name is None or not any(name in row for row in rows):
                return None
            return [row.get(name) for row in rows]

        if self.metadata is not None:
            dicts = [_object(row.get(self.metadata)) for row in rows]
        elif self.keys is not None:
            dicts = [{k: row[k] for k in self.keys if k in row} for row in rows]
        else:  # a "metadata" object where a record has one, else its other fields
            dicts = [
                _object(row[METADATA])
                if METADATA in row
                else {k: v for k, v in row.items() if k not in mapped}
                for row in rows
            ]
        ids = values(self.id)
        if ids is None:
            raise InvalidArgumentError(f"Expected every record to have an {self.id!r}")
        embeddings = values(self.embedding)
        return columns.checked(
            _strings(pa.array([None if i is None else str(i) for i in ids], pa.string()), "id"),
            None if embeddings is None else columns.vectors_of(embeddings),
            _text_array(values(self.document), "document"),
            _text_array(values(self.uri), "uri"),
            columns.metadata_columns([_present(d) for d in dicts]),
        )

    @staticmethod
    def for_rows(given: ColumnMap) -> Columns:
        """Columns for JSON objects, which name their fields per record: conventional names
        apply wherever a record has them."""
        return Columns(
            given.id or ID,
            given.embedding or EMBEDDING,
            given.document or DOCUMENT,
            given.uri or URI,
            given.metadata,
            given.metadata_columns,
        )


def _require(name: str | None, names: Sequence[str]) -> None:
    if name is not None and name not in names:
        raise InvalidArgumentError(f"No column {name!r} in the file; it has {', '.join(names)}")


# ---------------------------------------------------------------- typed columns


def _strings(values: pa.Array | None, what: str) -> pa.Array | None:
    if values is None:
        return None
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not (
        pa.types.is_string(values.type)
        or pa.types.is_large_string(values.type)
        or pa.types.is_integer(values.type)
        or pa.types.is_null(values.type)
    ):
        raise InvalidArgumentError(f"Expected the {what} column to hold strings, got {values.type}")
    return values.cast(pa.string())


def _vectors(values: pa.Array) -> pa.Array | None:
    """A column of embeddings as float32 fixed-size lists: from fixed-size or variable lists of
    numbers, or JSON arrays in text (CSV)."""
    kind = values.type
    if pa.types.is_null(kind):
        return None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = values.to_pylist()
        return columns.vectors_of([None if t is None else orjson.loads(t) for t in texts])
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or _fixed_list(kind)):
        raise InvalidArgumentError(f"Expected the embedding column to hold lists, got {kind}")
    if not (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)):
        raise InvalidArgumentError(f"Expected embeddings of numbers, got {kind}")
    if _fixed_list(kind):
        return values.cast(pa.list_(pa.float32(), kind.list_size))
    missing = values.is_null().to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(values).drop_null()
    if len(lengths) == 0:
        return None
    dimension = pc.max(lengths).as_py()
    if dimension == 0 or pc.min(lengths).as_py() != dimension:
        raise InvalidArgumentError(
            "Expected all embeddings to have the same non-zero dimension, got "
            f"{pc.unique(lengths).to_pylist()[:10]}"
        )
    matrix = np.zeros((len(values), dimension), dtype=np.float32)
    flat = values.flatten().cast(pa.float32()).to_numpy(zero_copy_only=False)
    matrix[~missing] = flat.reshape(-1, dimension)
    return columns.fixed_size_vectors(matrix, missing)


def _fixed_list(kind: pa.DataType) -> bool:
    return bool(pa.types.is_fixed_size_list(kind))


def _kind(kind: pa.DataType) -> str | None:
    """The metadata kind of an Arrow type (``None`` for a column of nulls only)."""
    if pa.types.is_dictionary(kind):
        return _kind(kind.value_type)
    if pa.types.is_boolean(kind):
        return "b"
    if pa.types.is_integer(kind):
        return "i"
    if pa.types.is_floating(kind):
        return "f"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "s"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or _fixed_list(kind):
        item = _kind(kind.value_type)
        return None if item is None or item.endswith("a") else item + "a"
    if pa.types.is_struct(kind) and {"indices", "values"} <= {f.name for f in kind}:
        return columns.SPARSE
    if pa.types.is_null(kind):
        return None
    raise ValueError(kind)


def _add_key(metadata: MetadataColumns, key: str, values: pa.Array | None) -> None:
    """One plain column (or struct child) as metadata key ``key``."""
    assert values is not None
    try:
        kind = _kind(values.type)
    except ValueError:
        raise InvalidArgumentError(
            f"Expected metadata column {key!r} to hold str, int, float, bool or lists of one of "
            f"those, got {values.type}"
        ) from None
    if kind is None:
        return
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    try:
        values = _sparse(values) if kind == columns.SPARSE else values
        values = values.cast(columns.KIND_TYPES[kind])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidArgumentError(f"Metadata column {key!r}: {exc}") from exc
    if kind == "f":
        values = pc.if_else(pc.is_nan(values), None, values)
    elif kind.endswith("a"):
        values = pc.if_else(pc.equal(pc.list_value_length(values), 0), None, values)
    if (key, kind) in metadata:
        raise InvalidArgumentError(f"Metadata key {key!r} comes from two columns")
    metadata[(key, kind)] = values


def _sparse(values: pa.Array) -> pa.Array:
    """A struct column of sparse vectors with the store's fields (``tokens`` may be absent)."""
    children = {f.name: child for f, child in zip(values.type, values.flatten(), strict=True)}
    tokens = children.get("tokens", pa.nulls(len(values), pa.list_(pa.string())))
    return pa.StructArray.from_arrays(
        [children["indices"], children["values"], tokens],
        names=["indices", "values", "tokens"],
        mask=values.is_null(),
    )


def _whole_metadata(metadata: MetadataColumns, values: pa.Array) -> None:
    """A column holding each record's whole metadata: struct, map or JSON text."""
    kind = values.type
    if pa.types.is_struct(kind):
        for field, child in zip(kind, values.flatten(), strict=True):
            if (field.metadata or {}).get(ENCODING) == JSON:
                texts = child.to_pylist()
                dicts = [None if t is None else {field.name: orjson.loads(t)} for t in texts]
                metadata.update(columns.metadata_columns(dicts))
            else:
                _add_key(metadata, field.name, child)
        return
    if pa.types.is_map(kind):
        dicts = [None if m is None else _present(dict(m)) for m in values.to_pylist()]
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = values.to_pylist()
        dicts = [None if t is None else _present(_object(orjson.loads(t))) for t in texts]
    elif pa.types.is_null(kind):
        return
    else:
        raise InvalidArgumentError(
            f"Expected the metadata column to be a struct, a map or JSON text, got {kind}"
        )
    metadata.update(columns.metadata_columns(dicts))


# ---------------------------------------------------------------- JSON values


def _object(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise InvalidArgumentError(f"Expected metadata to be a JSON object, got {value!r}")


def _present(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """``metadata`` without missing values (null, NaN, empty lists)."""
    if not metadata:
        return None
    kept = {
        k: v
        for k, v in metadata.items()
        if v is not None and v == v and v != []  # NaN != NaN
    }
    return kept or None


def _text_array(values: list[Any] | None, what: str) -> pa.Array | None:
    if values is None:
        return None
    if not all(v is None or isinstance(v, str) for v in values):
        raise InvalidArgumentError(f"Expected every {what} to be a string or null")
    return pa.array(values, pa.string())
