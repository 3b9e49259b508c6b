"""Records as Arrow: the table's base schema, rows built from a batch (Chroma's merge rules),
pure transformations of a table version by a write, and rows back to the wire's shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from chroma_serverless.domain.columns import KIND_TYPES as KIND_TYPES  # the store's column types
from chroma_serverless.domain.columns import SPARSE, sparse_struct, sparse_vector, value_kind
from chroma_serverless.records import layout
from chroma_serverless.types import Filter, GetResult, QueryResult, SparseVector

if TYPE_CHECKING:
    from collections.abc import Sequence

    from chroma_serverless.types import Include, Metadata, RecordBatch, UpdateMetadata, Vectors

# Nullable: rows of tables created before the column existed have no value.
WRITTEN_FIELD = pa.field(layout.WRITTEN, pa.int64(), nullable=True)


def base_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field(layout.ID, pa.string(), nullable=False),
            pa.field(layout.SEQ, pa.int64(), nullable=False),
            pa.field(layout.EMBEDDING, pa.list_(pa.float32(), dimension), nullable=True),
            pa.field(layout.DOCUMENT, pa.string(), nullable=True),
            pa.field(layout.URI, pa.string(), nullable=True),
            WRITTEN_FIELD,
        ]
    )


def metadata_field(key: str, kind: str) -> pa.Field:
    return pa.field(layout.metadata_column(key, kind), KIND_TYPES[kind], nullable=True)


def ids_filter(ids: list[str]) -> Filter:
    return Filter(ids=ids)


def batch_columns(batch: RecordBatch) -> set[str]:
    sent = set()
    if batch.documents is not None:
        sent.add(layout.DOCUMENT)
    if batch.uris is not None:
        sent.add(layout.URI)
    return sent


def in_order(data: pa.Table) -> pa.Table:
    return data.sort_by([(layout.SEQ, "ascending"), (layout.ID, "ascending")])


def new_row(batch: RecordBatch, i: int, seq: int) -> dict[str, Any]:
    metadata = batch.metadatas[i] if batch.metadatas is not None else None
    return {
        "id": batch.ids[i],
        layout.SEQ: seq,
        "embedding": batch.embeddings[i] if batch.embeddings is not None else None,
        layout.DOCUMENT: batch.documents[i] if batch.documents is not None else None,
        layout.URI: batch.uris[i] if batch.uris is not None else None,
        "metadata": _merge(None, metadata),
    }


def merged_row(old: dict[str, Any], batch: RecordBatch, i: int) -> dict[str, Any]:
    row = dict(old)
    if batch.embeddings is not None:
        row["embedding"] = batch.embeddings[i]
    if batch.documents is not None and batch.documents[i] is not None:
        row[layout.DOCUMENT] = batch.documents[i]
    if batch.uris is not None and batch.uris[i] is not None:
        row[layout.URI] = batch.uris[i]
    if batch.metadatas is not None:
        row["metadata"] = _merge(old["metadata"], batch.metadatas[i])
    return row


def _merge(old: Metadata | None, new: UpdateMetadata | None) -> Metadata | None:
    merged: dict[str, Any] = dict(old or {})
    for key, value in (new or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged or None


def value_of_kind(metadata: Metadata | None, key: str, kind: str) -> Any:
    if not metadata or key not in metadata:
        return None
    value = metadata[key]
    if value_kind(value) != kind:
        return None
    if isinstance(value, SparseVector):
        return sparse_struct(value)
    return value


def vectors_array(vectors: list[Vectors | None], dimension: int) -> pa.Array:
    flat = np.asarray(vectors, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dimension)


def columns(names: Sequence[str], include: Sequence[Include]) -> list[str]:
    columns = [layout.ID, layout.SEQ]
    if "embeddings" in include:
        columns.append(layout.EMBEDDING)
    if "documents" in include:
        columns.append(layout.DOCUMENT)
    if "uris" in include:
        columns.append(layout.URI)
    if "metadatas" in include:
        columns += [n for n in names if layout.parse_metadata_column(n) is not None]
    return columns


def records(data: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts, ``metadata`` rebuilt from the typed columns (``None`` when it has no key)."""
    records: list[dict[str, Any]] = [{"metadata": None} for _ in range(data.num_rows)]
    for name in data.column_names:
        parsed = layout.parse_metadata_column(name)
        if name == layout.EMBEDDING:
            column = data.column(name).combine_chunks()
            flat = column.flatten().to_numpy(zero_copy_only=False)
            values: Any = flat.reshape(len(column), column.type.list_size)
        else:
            values = data.column(name).to_pylist()
            if parsed is not None and parsed[1] == SPARSE:
                values = [None if v is None else sparse_vector(v) for v in values]
        for record, value in zip(records, values, strict=True):
            if parsed is None:
                record[name] = value
            elif value is not None:
                if record["metadata"] is None:
                    record["metadata"] = {}
                record["metadata"][parsed[0]] = value
    return records


def result(data: pa.Table, include: Sequence[Include]) -> GetResult:
    """The rows of ``data`` as a result's columns, read column by column: the ids, documents and
    uris as lists, the embeddings as one ``[n, d]`` array, the metadata as one dict per row
    (the shape the wire carries)."""
    found = GetResult(ids=data.column(layout.ID).to_pylist())
    if "embeddings" in include:
        found.embeddings = vectors(data)
    if "documents" in include:
        found.documents = _strings(data, layout.DOCUMENT)
    if "uris" in include:
        found.uris = _strings(data, layout.URI)
    if "metadatas" in include:
        found.metadatas = metadatas(data)
    return found


def query_result(found: list[pa.Table], include: Sequence[Include]) -> QueryResult:
    """One :func:`result` per query vector, with its ``_distance`` column as the distances."""
    pages = [result(data, [i for i in include if i != "embeddings"]) for data in found]
    answer = QueryResult(ids=[page.ids for page in pages])
    if "distances" in include:
        answer.distances = [data.column(layout.DISTANCE).to_pylist() for data in found]
    if "embeddings" in include:
        answer.embeddings = [vectors(data) for data in found]
    if "documents" in include:
        answer.documents = [page.documents or [] for page in pages]
    if "uris" in include:
        answer.uris = [page.uris or [] for page in pages]
    if "metadatas" in include:
        answer.metadatas = [page.metadatas or [] for page in pages]
    return answer


def vectors(data: pa.Table) -> Vectors:
    """The ``embedding`` column as one ``[n, d]`` float32 array (``[0, 0]`` without rows)."""
    if data.num_rows == 0 or layout.EMBEDDING not in data.column_names:
        return np.empty((0, 0), dtype=np.float32)
    column = data.column(layout.EMBEDDING).combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(len(column), column.type.list_size)


def metadatas(data: pa.Table) -> list[Metadata | None]:
    """Each row's metadata from its typed columns (``None`` for a row with no key)."""
    rows: list[Metadata | None] = [None] * data.num_rows
    for name in data.column_names:
        parsed = layout.parse_metadata_column(name)
        column = data.column(name)
        if parsed is None or column.null_count == len(column):
            continue
        key, kind = parsed
        values = column.to_pylist()
        if kind == SPARSE:
            values = [None if v is None else sparse_vector(v) for v in values]
        for row, value in enumerate(values):
            if value is not None:
                metadata = rows[row]
                if metadata is None:
                    metadata = rows[row] = {}
                metadata[key] = value
    return rows


def _strings(data: pa.Table, name: str) -> list[str | None]:
    if name not in data.column_names:
        return [None] * data.num_rows
    values: list[str | None] = data.column(name).to_pylist()
    return values


def empty() -> pa.Table:
    """No rows (the answer of a collection that has none stored)."""
    return pa.table(
        {layout.ID: pa.array([], pa.string()), layout.DISTANCE: pa.array([], pa.float32())}
    )
