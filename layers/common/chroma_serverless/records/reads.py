"""Chroma's reads: count, get, query and sparse nearest neighbours, each of one version of the
collection's table, from this process's in-memory snapshot of it when there is one, else from
the engine."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.records import arrow, layout
from chroma_serverless.records.engine import engine_errors, select
from chroma_serverless.records.masks import row_mask
from chroma_serverless.records.plan import EnginePlan, MemoryPlan
from chroma_serverless.records.sql import to_sql

if TYPE_CHECKING:
    from collections.abc import Sequence

    from chroma_serverless.records.memory.tier import MemoryTier
    from chroma_serverless.records.sparse.indexes import SparseIndexes
    from chroma_serverless.records.tables import Opened, Tables
    from chroma_serverless.records.tail import Tail
    from chroma_serverless.types import (
        Collection,
        Filter,
        GetRequest,
        GetResult,
        Include,
        IndexPolicy,
        QueryRequest,
        QueryResult,
        SparseVector,
    )


class Reads:
    def __init__(
        self, tables: Tables, memory: MemoryTier, sparse: SparseIndexes, policy: IndexPolicy
    ) -> None:
        self._tables = tables
        self._memory = memory
        self._sparse = sparse
        self._policy = policy

    def count(self, collection: Collection, tail: Tail | None = None) -> int:
        counted = self._tables.read(collection.id, lambda opened: self._count(collection, opened))
        return counted if tail is None else tail.count(counted)

    def _count(self, collection: Collection, opened: Opened | None) -> int:
        if opened is None:
            return 0
        snapshot = self._memory.at(collection.id, opened[1])
        return int(opened[0].count_rows()) if snapshot is None else snapshot.num_rows

    def get(
        self, collection: Collection, request: GetRequest, tail: Tail | None = None
    ) -> GetResult:
        def get(opened: Opened | None) -> GetResult:
            if tail is None:
                return arrow.result(self._rows(collection, request, opened), request.include)
            return arrow.result(self._rows_with(tail, collection, request, opened), request.include)

        return self._tables.read(collection.id, get)

    def _rows_with(
        self, tail: Tail, collection: Collection, request: GetRequest, opened: Opened | None
    ) -> pa.Table:
        """The page of rows of the version and ``tail`` together, in insertion order: enough
        of the version's (those the tail hides may be among them), then the tail's."""
        if request.limit == 0:
            return arrow.empty()
        wider = None if request.limit is None else request.offset + request.limit
        stored = self._rows(
            collection,
            dataclasses.replace(
                request, offset=0, limit=None if wider is None else wider + len(tail.stored)
            ),
            opened,
        )
        stored = stored.filter(pc.invert(pc.is_in(stored.column(layout.ID), tail.hidden)))
        snapshot = tail.snapshot
        mask = row_mask(request.filter, snapshot.data)
        assert mask is not None, "a tail is only read with filters it can evaluate"
        mine = snapshot.rows(
            mask, 0, None, arrow.columns(snapshot.data.column_names, request.include)
        )
        rows = arrow.in_order(pa.concat_tables([stored, mine], promote_options="permissive"))
        return (
            rows.slice(request.offset)
            if wider is None
            else rows.slice(request.offset, request.limit)
        )

    def _rows(self, collection: Collection, request: GetRequest, opened: Opened | None) -> pa.Table:
        if opened is None or request.limit == 0:
            return arrow.empty()
        table, version = opened
        snapshot = self._memory.current(collection, table, version)
        mask = None if snapshot is None else row_mask(request.filter, snapshot.data)
        if snapshot is not None and mask is not None:
            columns = arrow.columns(snapshot.data.column_names, request.include)
            return snapshot.rows(mask, request.offset, request.limit, columns)
        columns = arrow.columns(self._tables.described(table).names, request.include)
        predicate = to_sql(request.filter, self._tables.described(table).names)
        if request.offset == 0 and request.limit is None:
            return arrow.in_order(select(table, predicate, columns))
        return self._page(table, predicate, columns, request.offset, request.limit)

    def _page(
        self, table: Any, predicate: str | None, columns: list[str], offset: int, limit: int | None
    ) -> pa.Table:
        """One page in insertion order: find the page's keys first, then read only its rows."""
        keys = arrow.in_order(select(table, predicate, [layout.ID, layout.SEQ]))
        keys = keys.slice(offset) if limit is None else keys.slice(offset, limit)
        if keys.num_rows == 0 or set(columns) <= set(keys.column_names):
            return keys
        seq = keys.column(layout.SEQ)
        in_range = (
            f"`{layout.SEQ}` >= {pc.min(seq).as_py()} AND `{layout.SEQ}` <= {pc.max(seq).as_py()}"
        )
        data = select(
            table, in_range if predicate is None else f"({predicate}) AND {in_range}", columns
        )
        data = data.filter(pc.is_in(data.column(layout.ID), value_set=keys.column(layout.ID)))
        return arrow.in_order(data)

    def query(
        self, collection: Collection, request: QueryRequest, tail: Tail | None = None
    ) -> QueryResult:
        def query(opened: Opened | None) -> QueryResult:
            if tail is None:
                found = self._nearest(collection, request, opened)
            else:
                found = self._nearest_with(tail, collection, request, opened)
            return arrow.query_result(found, request.include)

        return self._tables.read(collection.id, query)

    def _nearest_with(
        self, tail: Tail, collection: Collection, request: QueryRequest, opened: Opened | None
    ) -> list[pa.Table]:
        """The version's nearest (more of them: those the tail hides may be among them) and
        the tail's, merged by distance."""
        wider = dataclasses.replace(request, n_results=request.n_results + len(tail.stored))
        stored = self._nearest(collection, wider, opened)
        snapshot = tail.snapshot
        mask = row_mask(request.filter, snapshot.data)
        assert mask is not None, "a tail is only read with filters it can evaluate"
        plan = MemoryPlan.of(snapshot, mask, collection, request, self._policy)
        merged = []
        for found, vector in zip(stored, request.embeddings, strict=True):
            kept = found.filter(pc.invert(pc.is_in(found.column(layout.ID), tail.hidden)))
            mine = plan.nearest(vector, request.n_results, collection)
            both = pa.concat_tables([kept, mine], promote_options="permissive")
            order = pc.sort_indices(both, [(layout.DISTANCE, "ascending")])
            merged.append(both.take(order).slice(0, request.n_results))
        return merged

    def _nearest(
        self, collection: Collection, request: QueryRequest, opened: Opened | None
    ) -> list[pa.Table]:
        table = None if opened is None else opened[0]
        snapshot = None if opened is None else self._memory.current(collection, *opened)
        if request.filter.ids is not None:
            self._check_ids_exist(table, request.filter.ids)
        mask = None if snapshot is None else row_mask(request.filter, snapshot.data)
        chosen: MemoryPlan | EnginePlan | None = None
        if snapshot is not None and mask is not None:
            chosen = MemoryPlan.of(snapshot, mask, collection, request, self._policy)
        elif table is not None:
            described = self._tables.described(table)
            chosen = EnginePlan.of(table, described, collection, request, self._policy)
        return [
            arrow.empty() if chosen is None else chosen.nearest(v, request.n_results, collection)
            for v in request.embeddings
        ]

    def _check_ids_exist(self, table: Any | None, ids: list[str]) -> None:
        """A query restricted to ids must name existing records: Chroma's server fails such a
        query (500 "Error finding id"); here it is the caller's error, naming the ids."""
        found: set[str] = set()
        if table is not None and ids:
            found = set(self.rows_of(table, ids, ()).column(layout.ID).to_pylist())
        missing = [i for i in dict.fromkeys(ids) if i not in found]
        if missing:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            shown = ", ".join(missing[:10]) + more
            raise InvalidArgumentError(
                f"Error finding id: the query's ids name records that do not exist: {shown}"
            )

    def sparse_knn(
        self,
        collection: Collection,
        key: str,
        vector: SparseVector,
        limit: int,
        request_filter: Filter,
        bm25: bool,
    ) -> list[tuple[str, float]]:
        if not vector.indices:
            return []

        def nearest(opened: Opened | None) -> list[tuple[str, float]]:
            if opened is None:
                return []
            snapshot = self._memory.current(collection, *opened)
            with engine_errors():
                return self._sparse.nearest(
                    opened[0], snapshot, collection.id, key, vector, limit, request_filter, bm25
                )

        return self._tables.read(collection.id, nearest)

    def rows_of(self, table: Any, ids: list[str], include: Sequence[Include]) -> pa.Table:
        """The rows of ``ids`` (``id``, ``seq`` and the columns of ``include``): from the
        table's snapshot when one of this very version is in memory, else from the engine."""
        snapshot = self._memory.at(table.name, table.version)
        if snapshot is None:
            columns = arrow.columns(self._tables.described(table).names, include)
            return select(table, to_sql(arrow.ids_filter(ids), ()), columns)
        mask = row_mask(arrow.ids_filter(ids), snapshot.data)
        assert mask is not None  # an ids filter never needs the engine
        return snapshot.rows(mask, 0, None, arrow.columns(snapshot.data.column_names, include))
