"""One key's inverted index of one table version (built by maintenance), and the rows written
or deleted since that version (so a reader of an older index still finds every write)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chroma_serverless.records import layout
from chroma_serverless.records.engine import select
from chroma_serverless.records.sparse.scoring import Candidates, Hits, Query, Rows, top

if TYPE_CHECKING:
    from chroma_serverless.types import SparseVector

WRITE_WINDOW_NS = 16 * 60 * 10**9  # Lambda's longest timeout (15 min) plus a minute of skew


class Index:
    """One key's inverted index of one table version."""

    def __init__(self, table: pa.Table) -> None:
        meta = {k.decode(): int(v) for k, v in (table.schema.metadata or {}).items()}
        self.version, self.cutoff, self.rows = meta["version"], meta["cutoff"], meta["rows"]

        def values(name: str) -> Any:
            return table.column(name).chunk(0).values

        self.ids: pa.Array = values("ids")
        self.seqs = values("seqs").to_numpy()
        self.written = values("written").to_numpy()
        self.terms = values("terms").to_numpy()
        self.starts = values("starts").to_numpy()
        self.docs = values("docs").to_numpy()
        self.weights = values("weights").to_numpy()
        self.nbytes = int(table.nbytes)

    @staticmethod
    def build(data: pa.Table, column: str, version: int, cutoff: int) -> pa.Table:
        """The index file's content for ``data``, every row of table ``version``."""
        rows = Rows(data, column)
        order = np.argsort(rows.terms, kind="stable")
        terms, firsts = np.unique(rows.terms[order], return_index=True)
        columns = {
            "ids": rows.ids.cast(pa.string()),
            "seqs": pa.array(rows.seqs, pa.int64()),
            "written": data.column(layout.WRITTEN).fill_null(0).combine_chunks(),
            "terms": pa.array(terms, pa.uint32()),
            "starts": pa.array(np.append(firsts, len(order)), pa.int64()),
            "docs": pa.array(rows.rows[order], pa.int32()),
            "weights": pa.array(rows.values[order], pa.float32()),
        }
        one_row = {
            name: pa.LargeListArray.from_arrays(pa.array([0, len(array)], pa.int64()), array)
            for name, array in columns.items()
        }
        metadata = {"version": version, "cutoff": cutoff, "rows": data.num_rows}
        return pa.table(one_row).replace_schema_metadata({k: str(v) for k, v in metadata.items()})

    def postings(self, query: Query) -> tuple[np.ndarray[Any, Any], ...]:
        """(row, query term position, weight) of each posting of a query term."""
        found = np.searchsorted(self.terms, query.terms)
        rows, slots, weights = [], [], []
        for slot, position in enumerate(found):
            if position < len(self.terms) and self.terms[position] == query.terms[slot]:
                start, end = self.starts[position], self.starts[position + 1]
                rows.append(self.docs[start:end])
                weights.append(self.weights[start:end])
                slots.append(np.full(end - start, slot))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(rows), np.concatenate(slots), np.concatenate(weights)


@dataclass(frozen=True)
class Changes:
    """How a table version differs from an indexed one: index rows no longer current
    (``stale``), the rows written since (``rows``) and how many rows the index misses."""

    stale: np.ndarray[Any, Any]
    rows: pa.Table | None
    count: int
    total: int  # rows of the table now


def changes(table: Any, index: Index, names: list[str], columns: list[str]) -> Changes:
    stale = np.zeros(len(index.ids), bool)
    if table.version == index.version:
        return Changes(stale, None, 0, index.rows)
    recent, changed, added = None, np.zeros(0, bool), 0
    if layout.WRITTEN in names:  # else no row was written since the column came: only deletes
        predicate = f"`{layout.WRITTEN}` > {index.cutoff}"
        recent = select(table, predicate, [c for c in columns if c in names])
        positions = pc.index_in(recent.column(layout.ID), value_set=index.ids)
        known = np.asarray(pc.is_valid(positions))
        where = np.asarray(positions.fill_null(0))
        stamps = np.asarray(recent.column(layout.WRITTEN).fill_null(0))
        changed = ~known | (index.written[where] != stamps)
        stale[where[changed & known]] = True
        added = int(np.count_nonzero(changed & ~known))
        recent = recent.filter(pa.array(changed))
    total = int(table.count_rows())
    deleted = index.rows + added - total
    if deleted > 0:
        current = select(table, None, [layout.ID]).column(layout.ID)
        stale |= ~np.asarray(pc.is_in(index.ids, value_set=current))
    return Changes(stale, recent, int(changed.sum()) + max(0, deleted), total)


def indexed(
    table: Any,
    index: Index,
    names: list[str],
    column: str,
    vector: SparseVector,
    limit: int,
    predicate: str | None,
    bm25: bool,
) -> Hits:
    """Search with ``index``: its postings less the rows no longer current, plus the rows
    written since it was built."""
    found = changes(table, index, names, [layout.ID, layout.SEQ, layout.WRITTEN, column])
    recent = None if found.rows is None else Rows(found.rows, column)
    query = Query.of(vector)
    rows, slots, weights = index.postings(query)
    current = ~found.stale[rows]
    rows, slots, weights = rows[current], slots[current], weights[current]
    if bm25:
        frequencies = np.bincount(slots, minlength=len(query.terms))
        if recent is not None:
            frequencies = frequencies + recent.frequencies(query)
        query = query.scaled(found.total, frequencies)
    contributions = query.weights[slots] * weights
    matching = matching_ids(table, predicate)
    allowed = allowed_rows(index.ids, matching)
    candidates = [
        Candidates.scored(rows, contributions, len(index.ids), allowed, index.ids, index.seqs)
    ]
    if recent is not None:
        candidates.append(recent.nearest(query, allowed_rows(recent.ids, matching)))
    return top(candidates, limit)


def matching_ids(table: Any, predicate: str | None) -> pa.ChunkedArray | None:
    """The ids of the rows ``predicate`` matches (``None``: no filter)."""
    return None if predicate is None else select(table, predicate, [layout.ID]).column(layout.ID)


def allowed_rows(ids: Any, matching: pa.ChunkedArray | None) -> np.ndarray[Any, Any] | None:
    return None if matching is None else np.asarray(pc.is_in(ids, value_set=matching))
