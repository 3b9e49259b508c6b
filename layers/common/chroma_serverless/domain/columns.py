"""Records as Arrow columns: the bulk counterpart of :class:`~chroma_serverless.types.RecordBatch`
that imports and exports move without a Python object per record.

Metadata is held the way the record store lays it out: one typed array per (key, kind), null where
a record lacks the key or holds another kind (``value_kind``: ``s``/``i``/``f``/``b``, the
lists ``sa``/``ia``/``fa``/``ba`` and ``sv`` sparse vectors). A key may thus have several kinds
across records, as Chroma allows, and typed file columns map onto it without conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chroma_serverless.domain import sparse_vectors
from chroma_serverless.domain.checks import check_unique
from chroma_serverless.domain.metadata import check_metadata_key, validate_metadata
from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.types import RecordBatch, SparseVector

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from chroma_serverless.types import Metadata, MetadataValue, UpdateMetadata, Vectors

# The kind of a metadata value: s(tring), i(nt64), f(loat64), b(ool), a list of one of those
# (``sa`` ...), or a sparse vector.
SCALAR_KINDS = ("s", "i", "f", "b")  # str, int64, float64, bool
SPARSE = "sv"
KINDS = (*SCALAR_KINDS, *(kind + "a" for kind in SCALAR_KINDS), SPARSE)  # lists, sparse vectors


def scalar_kind(value: object) -> str:
    """The kind code of a scalar metadata value; bool is checked before int on purpose."""
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "f"
    if isinstance(value, str):
        return "s"
    raise TypeError(f"not a metadata scalar: {value!r}")


def value_kind(value: MetadataValue) -> str:
    if isinstance(value, SparseVector):
        return SPARSE
    if isinstance(value, list):
        return scalar_kind(value[0]) + "a"
    return scalar_kind(value)


SCALAR_TYPES: dict[str, pa.DataType] = {
    "s": pa.string(),
    "i": pa.int64(),
    "f": pa.float64(),
    "b": pa.bool_(),
}
SPARSE_TYPE = pa.struct(
    [
        pa.field("indices", pa.list_(pa.uint32())),
        pa.field("values", pa.list_(pa.float32())),
        pa.field("tokens", pa.list_(pa.string())),
    ]
)
KIND_TYPES = {
    **SCALAR_TYPES,
    **{k + "a": pa.list_(t) for k, t in SCALAR_TYPES.items()},
    SPARSE: SPARSE_TYPE,
}

MetadataColumns = dict[tuple[str, str], pa.Array]


@dataclass(frozen=True)
class ColumnBatch:
    """Records as columns. ``embeddings`` is a float32 fixed-size list; a null row is embedded
    from its document by the service. ``metadata`` maps (key, kind) to an array of
    ``KIND_TYPES[kind]``. Build one with :func:`checked`, which applies Chroma's rules."""

    ids: pa.Array
    embeddings: pa.Array | None = None
    documents: pa.Array | None = None
    uris: pa.Array | None = None
    metadata: MetadataColumns = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dimension(self) -> int | None:
        return None if self.embeddings is None else int(self.embeddings.type.list_size)

    def take(self, rows: Sequence[int] | np.ndarray[Any, Any]) -> ColumnBatch:
        indices = pa.array(np.asarray(rows, dtype=np.int64))
        return ColumnBatch(
            self.ids.take(indices),
            None if self.embeddings is None else self.embeddings.take(indices),
            None if self.documents is None else self.documents.take(indices),
            None if self.uris is None else self.uris.take(indices),
            {column: values.take(indices) for column, values in self.metadata.items()},
        )

    def missing_vectors(self) -> np.ndarray[Any, Any]:
        """Indices of the rows without an embedding."""
        if self.embeddings is None:
            return np.arange(len(self))
        return np.flatnonzero(self.embeddings.is_null().to_numpy(zero_copy_only=False))

    def with_vectors(self, rows: np.ndarray[Any, Any], vectors: Vectors) -> ColumnBatch:
        """The batch with ``vectors`` as the embeddings of ``rows`` (the rows that had none)."""
        dimension = vectors.shape[1]
        if self.dimension not in (None, dimension):
            raise InvalidArgumentError(
                f"Expected embeddings of dimension {self.dimension}, got {dimension}"
            )
        matrix = np.zeros((len(self), dimension), dtype=np.float32)
        if self.embeddings is not None and len(rows) < len(self):
            present = np.setdiff1d(np.arange(len(self)), rows)
            matrix[present] = _flat(self.embeddings).reshape(-1, dimension)
        matrix[rows] = vectors
        return replace(self, embeddings=fixed_size_vectors(matrix))

    def texts(self, rows: np.ndarray[Any, Any]) -> list[str]:
        """The documents of ``rows`` (each has one: :func:`checked` sees to it)."""
        assert self.documents is not None
        return [str(text) for text in self.documents.take(pa.array(rows)).to_pylist()]

    def vectors(self) -> Vectors:
        """Every row's embedding as one ``[n, d]`` array (each row must have one)."""
        assert self.embeddings is not None and self.embeddings.null_count == 0
        return _flat(self.embeddings).reshape(len(self), -1)

    def metadatas(self) -> list[Metadata | None]:
        rows: list[dict[str, Any] | None] = [None] * len(self)
        for (key, kind), values in self.metadata.items():
            for i, value in enumerate(values.to_pylist()):
                if value is not None:
                    row = rows[i]
                    if row is None:
                        row = rows[i] = {}
                    row[key] = sparse_vector(value) if kind == SPARSE else value
        return rows

    def to_record_batch(self) -> RecordBatch:
        metadatas = cast("list[UpdateMetadata | None]", self.metadatas())
        return RecordBatch(
            ids=self.ids.to_pylist(),
            embeddings=self.vectors() if self.embeddings is not None else None,
            metadatas=metadatas if self.metadata else None,
            documents=None if self.documents is None else self.documents.to_pylist(),
            uris=None if self.uris is None else self.uris.to_pylist(),
        )


def fixed_size_vectors(matrix: Vectors, missing: np.ndarray[Any, Any] | None = None) -> pa.Array:
    """``[n, d]`` float32 as a fixed-size list array; ``missing`` flags null rows."""
    values = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1), pa.float32())
    mask = None if missing is None or not missing.any() else pa.array(missing)
    return pa.FixedSizeListArray.from_arrays(values, int(matrix.shape[1]), mask=mask)


def _flat(embeddings: pa.Array) -> np.ndarray[Any, Any]:
    """The values of the non-null rows, in order."""
    flat = embeddings.flatten()
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32)


# ---------------------------------------------------------------- building batches


def checked(
    ids: pa.Array,
    embeddings: pa.Array | None = None,
    documents: pa.Array | None = None,
    uris: pa.Array | None = None,
    metadata: MetadataColumns | None = None,
) -> ColumnBatch:
    """A batch after Chroma's rules: unique non-empty ids, finite vectors of one dimension, a
    document wherever a vector is missing, and metadata keys and values a record may hold."""
    if ids.null_count or (len(ids) and pc.min(pc.utf8_length(ids)).as_py() == 0):
        raise InvalidArgumentError("Expected every ID to be a non-empty str")
    if pc.count_distinct(ids).as_py() != len(ids):
        check_unique(ids.to_pylist())
    if embeddings is not None:
        flat = embeddings.flatten()
        if flat.null_count or (len(flat) and not pc.all(pc.is_finite(flat)).as_py()):
            raise InvalidArgumentError("Expected embeddings to contain only finite numbers")
        if embeddings.null_count == len(embeddings):
            embeddings = None
    batch = ColumnBatch(ids, embeddings, documents, uris, dict(metadata or {}))
    lacking = batch.missing_vectors()
    if len(lacking) and (documents is None or documents.take(pa.array(lacking)).null_count):
        raise InvalidArgumentError(
            "Expected embeddings, or documents for every record to embed on the server"
        )
    for (key, kind), values in batch.metadata.items():
        check_metadata_key(key)
        _check_values(key, kind, values)
    return batch


def _check_values(key: str, kind: str, values: pa.Array) -> None:
    if kind == SPARSE:
        for value in values.drop_null().to_pylist():
            tagged = {k: v for k, v in value.items() if v is not None}
            sparse_vectors.parse(
                {sparse_vectors.TYPE_KEY: sparse_vectors.TYPE_VALUE, **tagged},
                f"metadata value for key {key!r}",
            )
    if kind in ("f", "fa"):
        flat = values.flatten() if kind == "fa" else values
        finite = pc.is_finite(flat.drop_null())
        if len(finite) and not pc.all(finite).as_py():
            raise InvalidArgumentError(
                f"Expected metadata value for key {key!r} to be a finite number"
            )
    if kind.endswith("a"):
        lengths = pc.list_value_length(values).drop_null()
        if len(lengths) and pc.min(lengths).as_py() == 0:
            raise InvalidArgumentError(
                f"Expected metadata list value for key {key!r} to be a non-empty list"
            )
        if values.flatten().null_count:
            raise InvalidArgumentError(
                f"Expected metadata list value for key {key!r} to hold no nulls"
            )


def metadata_columns(metadatas: Sequence[Mapping[str, Any] | None]) -> MetadataColumns:
    """Typed columns of per-record metadata dicts (validated with Chroma's rules)."""
    found: dict[tuple[str, str], dict[int, Any]] = {}
    for row, metadata in enumerate(metadatas):
        for key, value in (validate_metadata(metadata, sparse=True) or {}).items():
            kind = value_kind(value)
            stored = sparse_struct(value) if isinstance(value, SparseVector) else value
            found.setdefault((key, kind), {})[row] = stored
    columns: MetadataColumns = {}
    for (key, kind), values in found.items():
        full = [values.get(row) for row in range(len(metadatas))]
        columns[(key, kind)] = pa.array(full, KIND_TYPES[kind])
    return columns


def vectors_of(rows: Sequence[Any]) -> pa.Array | None:
    """Per-record vectors (sequences of numbers, or ``None``) as a fixed-size list array."""
    present = [i for i, row in enumerate(rows) if row is not None]
    if not present:
        return None
    dimensions = {len(rows[i]) for i in present}
    if len(dimensions) != 1 or 0 in dimensions:
        raise InvalidArgumentError(
            f"Expected all embeddings to have the same non-zero dimension, got {sorted(dimensions)}"
        )
    matrix = np.zeros((len(rows), dimensions.pop()), dtype=np.float32)
    try:
        matrix[present] = np.asarray([rows[i] for i in present], dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"Expected embeddings to be lists of numbers: {exc}") from exc
    missing = np.ones(len(rows), dtype=bool)
    missing[present] = False
    return fixed_size_vectors(matrix, missing)


def sparse_struct(vector: SparseVector) -> dict[str, Any]:
    """A sparse vector as its struct column holds it."""
    return {"indices": vector.indices, "values": vector.values, "tokens": vector.tokens}


def sparse_vector(stored: Mapping[str, Any]) -> SparseVector:
    """A sparse vector as its struct column holds it (indices, values, tokens or null)."""
    tokens = stored["tokens"]
    return SparseVector(
        tuple(stored["indices"]), tuple(stored["values"]), None if tokens is None else tuple(tokens)
    )
