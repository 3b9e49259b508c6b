"""Column batches in the table's layout and back: the bulk write and scan paths, with no Python
object per record."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from chroma_serverless.domain.columns import ColumnBatch
from chroma_serverless.records import arrow, layout

if TYPE_CHECKING:
    from collections.abc import Iterable


def metadata_fields(batch: ColumnBatch) -> list[pa.Field]:
    return [arrow.metadata_field(key, kind) for key, kind in batch.metadata]


def to_layout(batch: ColumnBatch, first_seq: int, schema: pa.Schema) -> pa.Table:
    """The batch as new rows of a table with ``schema`` (which has every column of the batch
    and ``written``): sequence numbers from ``first_seq`` on, written at ``first_seq`` (the
    time the write started), absent columns left out (null)."""
    assert batch.embeddings is not None and batch.embeddings.null_count == 0
    seq = np.arange(first_seq, first_seq + len(batch), dtype=np.int64)
    arrays = {
        layout.ID: batch.ids,
        layout.SEQ: pa.array(seq),
        layout.EMBEDDING: batch.embeddings,
        layout.WRITTEN: pa.array(np.full(len(batch), first_seq, dtype=np.int64)),
    }
    if batch.documents is not None:
        arrays[layout.DOCUMENT] = batch.documents
    if batch.uris is not None:
        arrays[layout.URI] = batch.uris
    for (key, kind), values in batch.metadata.items():
        arrays[layout.metadata_column(key, kind)] = values
    fields = [schema.field(name) for name in arrays]
    return pa.Table.from_arrays(
        [values.cast(f.type) for values, f in zip(arrays.values(), fields, strict=True)],
        schema=pa.schema(fields),
    )


def from_layout(data: pa.Table | pa.RecordBatch) -> ColumnBatch:
    """Stored rows (any subset of the layout's columns) as a column batch."""
    names = data.schema.names

    def column(name: str) -> pa.Array | None:
        return _array(data.column(name)) if name in names else None

    metadata = {}
    for name in names:
        parsed = layout.parse_metadata_column(name)
        if parsed is not None:
            metadata[parsed] = _array(data.column(name))
    return ColumnBatch(
        _array(data.column(layout.ID)),
        column(layout.EMBEDDING),
        column(layout.DOCUMENT),
        column(layout.URI),
        metadata,
    )


def metadata_kinds(schema: pa.Schema) -> list[tuple[str, str]]:
    """The (key, kind) of every metadata column of a table schema."""
    parsed = (layout.parse_metadata_column(name) for name in schema.names)
    return [p for p in parsed if p is not None]


def data_columns(names: Iterable[str]) -> list[str]:
    """Every stored column a record is made of (not the insertion sequence or write time)."""
    return [name for name in names if name not in (layout.SEQ, layout.WRITTEN)]


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
