"""Chroma's writes as LanceDB commits: add, upsert, update and delete (and bulk upserts of
column batches), each carrying this process's in-memory snapshot to the version it commits."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from chroma_serverless.domain.columns import value_kind
from chroma_serverless.records import arrow, bulk, layout
from chroma_serverless.records.engine import engine_errors, retry_on_conflict, select
from chroma_serverless.records.masks import row_mask
from chroma_serverless.records.sql import to_sql
from chroma_serverless.records.tail import resolve

if TYPE_CHECKING:
    from collections.abc import Callable

    from chroma_serverless.domain.columns import ColumnBatch
    from chroma_serverless.records.entries import Entry
    from chroma_serverless.records.memory.snapshot import Snapshot
    from chroma_serverless.records.memory.tier import MemoryTier
    from chroma_serverless.records.reads import Reads
    from chroma_serverless.records.tables import Tables
    from chroma_serverless.types import Collection, DeleteRequest, Filter, RecordBatch


class Writes:
    def __init__(self, tables: Tables, memory: MemoryTier, reads: Reads) -> None:
        self._tables = tables
        self._memory = memory
        self._reads = reads

    @retry_on_conflict
    def add(self, collection: Collection, batch: RecordBatch) -> None:
        table = self._tables.writable(collection)
        before = table.version
        first = time.time_ns()
        rows = [arrow.new_row(batch, i, first + i) for i in range(len(batch))]
        data = self._to_arrow(table, collection, rows, arrow.batch_columns(batch))
        with engine_errors():
            done = table.merge_insert(layout.ID).when_not_matched_insert_all().execute(data)
        self._memory.advance(
            collection, table, before, done.version, lambda old: old.inserted(done.version, data)
        )

    @retry_on_conflict
    def upsert(self, collection: Collection, batch: RecordBatch) -> None:
        table = self._tables.writable(collection)
        before = table.version
        existing = self._rows_by_id(table, batch.ids)
        first = time.time_ns()
        rows = [
            arrow.merged_row(existing[batch.ids[i]], batch, i)
            if batch.ids[i] in existing
            else arrow.new_row(batch, i, first + i)
            for i in range(len(batch))
        ]
        data = self._to_arrow(table, collection, rows, arrow.batch_columns(batch), full=True)
        with engine_errors():
            done = (
                table.merge_insert(layout.ID)
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data)
            )
        self._memory.advance(
            collection, table, before, done.version, lambda old: old.replaced(done.version, data)
        )

    @retry_on_conflict
    def update(self, collection: Collection, batch: RecordBatch) -> None:
        table = self._tables.open(collection.id)
        if table is None:
            return
        before = table.version
        existing = self._rows_by_id(table, batch.ids)
        rows = [
            arrow.merged_row(existing[record_id], batch, i)
            for i, record_id in enumerate(batch.ids)
            if record_id in existing
        ]
        if not rows:
            return
        data = self._to_arrow(table, collection, rows, arrow.batch_columns(batch), full=True)
        values = _in_place(data) if batch.embeddings is None else None
        with engine_errors():
            if values is not None:  # one row, scalars only: an in-place update, half the cost
                where = to_sql(arrow.ids_filter(data.column(layout.ID).to_pylist()), ())
                done = table.update(where=where, values=values)
            else:
                done = table.merge_insert(layout.ID).when_matched_update_all().execute(data)
        self._memory.advance(
            collection, table, before, done.version, lambda old: old.replaced(done.version, data)
        )

    @retry_on_conflict
    def delete(self, collection: Collection, request: DeleteRequest) -> int:
        table = self._tables.open(collection.id)
        if table is None or request.limit == 0:
            return 0
        before = table.version
        doomed = request.filter
        predicate = to_sql(doomed, self._tables.described(table).names)
        if request.limit is not None:
            keys = arrow.in_order(select(table, predicate, [layout.ID, layout.SEQ]))
            doomed = arrow.ids_filter(keys.slice(0, request.limit).column(layout.ID).to_pylist())
            predicate = to_sql(doomed, ())
        with engine_errors():
            result = table.delete(predicate or "TRUE")
        self._memory.advance(
            collection, table, before, result.version, _deleting(result.version, doomed)
        )
        return int(result.num_deleted_rows)

    @retry_on_conflict
    def fold(self, collection: Collection, base: int | None, entries: list[Entry]) -> int | None:
        """Commit the outcome of ``entries`` (in order) on top of version ``base`` (``None``:
        the latest) to the latest version; returns the version that holds it.

        The outcome is absolute: each id the entries touch ends as one full row, or deleted,
        as applying them one by one to ``base`` would leave it (``add`` of a present id is
        ignored, ``update`` of a missing one too, ``upsert`` merges metadata per key). So
        folding again after a folder died between its commits, on whatever it committed,
        gives the same table. ``None``: there is no table and the entries create none."""
        table = self._tables.open(collection.id)
        if table is None:
            sized = [e.batch.embeddings for e in entries if e.operation in ("add", "upsert")]
            if not sized:
                return None
            # the entries' own size: the caller's view of the collection may predate them
            first = next((vectors for vectors in sized if vectors is not None), None)
            if first is not None:
                collection = dataclasses.replace(collection, dimension=int(first.shape[1]))
            table = self._tables.writable(collection)
        dimension = int(table.schema.field(layout.EMBEDDING).type.list_size)
        collection = dataclasses.replace(collection, dimension=dimension)
        before = table.version
        on = table if base is None or base == before else self._tables.version(collection.id, base)
        state: dict[str, dict[str, Any] | None] = {}
        resolve(entries, state, lambda ids: self._rows_by_id(on, ids))
        doomed = [record_id for record_id, row in state.items() if row is None]
        rows = [row for row in state.values() if row is not None]
        version = before
        if doomed:
            with engine_errors():
                version = table.delete(to_sql(arrow.ids_filter(doomed), ())).version
            self._memory.advance(
                collection, table, before, version, _deleting(version, arrow.ids_filter(doomed))
            )
        if rows:
            last = version
            data = self._to_arrow(table, collection, rows, {layout.DOCUMENT, layout.URI}, full=True)
            with engine_errors():
                version = (
                    table.merge_insert(layout.ID)
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(data)
                    .version
                )
            self._memory.advance(
                collection, table, last, version, lambda old: old.replaced(version, data)
            )
        return int(version)

    def upsert_columns(self, collection: Collection, batch: ColumnBatch) -> None:
        """New ids are inserted straight from the columns; ids already stored (a replayed
        import, a reload) take the merge path of :meth:`upsert`."""
        stored = self._insert_new(collection, batch)
        if len(stored):
            self.upsert(collection, batch.take(stored).to_record_batch())

    @retry_on_conflict
    def _insert_new(self, collection: Collection, batch: ColumnBatch) -> list[int]:
        """Insert the records whose ids are new; returns the positions of those it left alone."""
        table = self._tables.writable(collection)
        schema = self._tables.ensure_columns(
            table, [arrow.WRITTEN_FIELD, *bulk.metadata_fields(batch)]
        )
        first = time.time_ns()
        data = bulk.to_layout(batch, first, schema)
        with engine_errors():
            done = table.merge_insert(layout.ID).when_not_matched_insert_all().execute(data)
        if int(done.num_inserted_rows) == len(batch):
            return []
        ids = batch.ids.to_pylist()
        found = select(table, to_sql(arrow.ids_filter(ids), ()), [layout.ID, layout.SEQ])
        ours = {record_id: first + i for i, record_id in enumerate(ids)}
        stored = found.to_pydict()
        older = {
            record_id
            for record_id, seq in zip(stored[layout.ID], stored[layout.SEQ], strict=True)
            if seq != ours[record_id]
        }
        return [i for i, record_id in enumerate(ids) if record_id in older]

    def _rows_by_id(self, table: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored rows of ``ids``, to merge into."""
        data = self._reads.rows_of(table, ids, ("embeddings", "documents", "uris", "metadatas"))
        return {row["id"]: row for row in arrow.records(data)}

    def _to_arrow(
        self,
        table: Any,
        collection: Collection,
        rows: list[dict[str, Any]],
        sent: set[str],
        full: bool = False,
    ) -> pa.Table:
        """Arrow data for ``rows``; ``full`` writes every metadata column so stale values clear."""
        wanted = {
            layout.metadata_column(key, value_kind(value)): (key, value_kind(value))
            for row in rows
            for key, value in (row["metadata"] or {}).items()
        }
        schema = self._tables.ensure_columns(
            table,
            [arrow.WRITTEN_FIELD, *(arrow.metadata_field(k, kind) for k, kind in wanted.values())],
        )
        if full:
            for name in schema.names:
                parsed = layout.parse_metadata_column(name)
                if parsed is not None:
                    wanted.setdefault(name, parsed)
        assert collection.dimension is not None
        arrays: dict[str, pa.Array] = {
            layout.ID: pa.array([row["id"] for row in rows], pa.string()),
            layout.SEQ: pa.array([row[layout.SEQ] for row in rows], pa.int64()),
            layout.EMBEDDING: arrow.vectors_array(
                [row["embedding"] for row in rows], collection.dimension
            ),
            layout.WRITTEN: pa.array([time.time_ns()] * len(rows), pa.int64()),
        }
        for column in (layout.DOCUMENT, layout.URI):
            if full or column in sent:
                arrays[column] = pa.array([row[column] for row in rows], pa.string())
        for name, (key, kind) in wanted.items():
            values = [arrow.value_of_kind(row["metadata"], key, kind) for row in rows]
            arrays[name] = pa.array(values, arrow.KIND_TYPES[kind])
        return pa.table(arrays, schema=pa.schema([schema.field(name) for name in arrays]))


def _in_place(data: pa.Table) -> dict[str, Any] | None:
    """The column values of a one-row update as an engine ``update`` takes them (its SQL
    literals cover scalars), or ``None`` when it must be a ``merge_insert``."""
    if data.num_rows != 1:
        return None
    columns = [n for n in data.column_names if n not in (layout.ID, layout.SEQ, layout.EMBEDDING)]
    if any(pa.types.is_nested(data.schema.field(n).type) for n in columns):
        return None
    return {name: data.column(name)[0].as_py() for name in columns}


def _deleting(version: int, doomed: Filter) -> Callable[[Snapshot], Snapshot | None]:
    """A snapshot's change by a delete (``None`` when the filter needs the engine)."""

    def change(old: Snapshot) -> Snapshot | None:
        mask = row_mask(doomed, old.data)
        return None if mask is None else old.without(version, mask)

    return change
