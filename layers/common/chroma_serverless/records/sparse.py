"""Sparse vector search: the rows nearest to a sparse query, by ``1 - q·d`` over the rows that
share a term with it (with ``bm25``, each query weight is first scaled by the term's IDF over
the whole collection, ``ln((N - n_t + 0.5) / (n_t + 0.5) + 1)``).

Three sources, all exact: past the index threshold, the inverted index maintenance builds for
each sparse-indexed key; else the table's in-memory snapshot, if held; else a scan of the table.

The index of a key is one Arrow IPC file written next to the table's own files
(``<table>/_sparse/<key>/<table version>.arrow``, a local file or an S3 object): the ids, seqs
and write stamps of every row of that table version, and the key's postings sorted by term
(for each term, the rows holding it and their weights). A reader loads it once per version
into memory. It serves any later table version: rows written since (those with a ``written``
stamp past the index's cutoff whose stamp differs from the indexed one) are scanned and
replace their indexed entries, and rows deleted since are found by counting (and, only when
some were, by listing the current ids), so every acknowledged write is found and BM25's N and
n_t count exactly the current rows.

The cutoff is the time maintenance started reading, less ``WRITE_WINDOW_NS``: a write stamps
its rows when it starts, so a row committed after the indexed version carries a stamp no older
than that (a write lasts at most a Lambda timeout, with room for clock skew).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from chroma_serverless import collection_schema, layout
from chroma_serverless.filters import to_sql
from chroma_serverless.masks import row_mask
from chroma_serverless.records.engine import select
from chroma_serverless.records.versions import s3_filesystem

if TYPE_CHECKING:
    from collections.abc import Mapping

    from chroma_serverless.masks import Mask
    from chroma_serverless.snapshot import Snapshot
    from chroma_serverless.types import Collection, Filter, IndexPolicy, SparseVector

WRITE_WINDOW_NS = 16 * 60 * 10**9  # Lambda's longest timeout (15 min) plus a minute of skew
INDEX_DIR = "_sparse"
KEPT_VERSIONS = 2  # a reader that listed the previous file can still load it
Hits = list[tuple[str, float]]


@dataclass(frozen=True)
class Query:
    """A sparse query: its terms (ascending) and their weights."""

    terms: np.ndarray[Any, np.dtype[np.uint32]]
    weights: np.ndarray[Any, np.dtype[np.float64]]

    @classmethod
    def of(cls, vector: SparseVector) -> Query:
        return cls(np.asarray(vector.indices, np.uint32), np.asarray(vector.values, np.float64))

    def scaled(self, rows: int, frequencies: np.ndarray[Any, Any]) -> Query:
        """BM25: each weight times its term's IDF among ``rows`` rows."""
        idf = np.log1p((rows - frequencies + 0.5) / (frequencies + 0.5))
        return Query(self.terms, self.weights * idf)


class Rows:
    """Some rows' sparse vectors under one key, flattened: for each entry its row, term and
    weight (rows without a vector have no entries)."""

    def __init__(self, data: pa.Table, column: str) -> None:
        self.ids: pa.Array = data.column(layout.ID).combine_chunks()
        self.seqs = data.column(layout.SEQ).to_numpy()
        self.size = data.num_rows
        if column not in data.column_names or self.size == 0:
            self.rows = np.zeros(0, np.int64)
            self.terms = np.zeros(0, np.uint32)
            self.values = np.zeros(0, np.float32)
            return
        vectors = data.column(column).combine_chunks()
        indices = pc.struct_field(vectors, "indices")
        self.rows = np.asarray(pc.list_parent_indices(indices))
        self.terms = np.asarray(pc.list_flatten(indices))
        self.values = np.asarray(pc.list_flatten(pc.struct_field(vectors, "values")))

    def matches(self, query: Query) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(row, position of the term in the query) of each entry on a query term."""
        on = np.isin(self.terms, query.terms)
        return np.flatnonzero(on), np.searchsorted(query.terms, self.terms[on])

    def frequencies(self, query: Query, live: Mask | None = None) -> np.ndarray[Any, Any]:
        """How many (``live``) rows hold each query term."""
        entries, slots = self.matches(query)
        if live is not None:
            slots = slots[live[self.rows[entries]]]
        return np.bincount(slots, minlength=len(query.terms))

    def nearest(self, query: Query, allowed: np.ndarray[Any, Any] | None) -> Candidates:
        entries, slots = self.matches(query)
        rows = self.rows[entries]
        contributions = query.weights[slots] * self.values[entries]
        return Candidates.scored(rows, contributions, self.size, allowed, self.ids, self.seqs)


@dataclass(frozen=True)
class Candidates:
    """Scored rows: positions in ``ids``/``seqs`` and their distances."""

    ids: pa.Array
    seqs: np.ndarray[Any, Any]
    rows: np.ndarray[Any, Any]
    distances: np.ndarray[Any, Any]

    @classmethod
    def scored(
        cls,
        rows: np.ndarray[Any, Any],
        contributions: np.ndarray[Any, Any],
        size: int,
        allowed: np.ndarray[Any, Any] | None,
        ids: pa.Array,
        seqs: np.ndarray[Any, Any],
    ) -> Candidates:
        """Rows with at least one contribution (and ``allowed``), at ``1 - Σ contributions``."""
        dots = np.bincount(rows, weights=contributions, minlength=size)
        touched = np.bincount(rows, minlength=size) > 0
        if allowed is not None:
            touched &= allowed
        chosen = np.flatnonzero(touched)
        return cls(ids, seqs, chosen, 1.0 - dots[chosen])


def top(candidates: list[Candidates], limit: int) -> Hits:
    """The ``limit`` nearest, ascending by distance, ties in insertion order."""
    distances = np.concatenate([c.distances for c in candidates])
    if len(distances) > limit:  # keep the limit nearest and every row tied with the last
        bound = np.partition(distances, limit - 1)[limit - 1]
        near = np.flatnonzero(distances <= bound)
    else:
        near = np.arange(len(distances))
    seqs = np.concatenate([c.seqs[c.rows] for c in candidates])
    order = near[np.lexsort((seqs[near], distances[near]))][:limit]
    starts = np.cumsum([0, *(len(c.rows) for c in candidates)])
    hits = []
    for i in order:
        which = int(np.searchsorted(starts, i, side="right")) - 1
        source = candidates[which]
        hits.append((source.ids[int(source.rows[i - starts[which]])].as_py(), float(distances[i])))
    return hits


def scan(
    data: pa.Table,
    column: str,
    vector: SparseVector,
    limit: int,
    allowed: Mask | None,
    bm25: bool,
    live: Mask | None = None,
) -> Hits:
    """Nearest rows of ``data``, which holds every row of the table (and, where ``live`` is
    false, rows no longer current); ``allowed`` a mask or ``None``."""
    rows = Rows(data, column)
    query = Query.of(vector)
    if bm25:
        count = rows.size if live is None else int(live.sum())
        query = query.scaled(count, rows.frequencies(query, live))
    if live is not None:
        allowed = live if allowed is None else allowed & live
    return top([rows.nearest(query, allowed)], limit)


# ---------------------------------------------------------------------------- the index


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


def _indexed(
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
    matching = _matching(table, predicate)
    allowed = _allowed(index.ids, matching)
    candidates = [
        Candidates.scored(rows, contributions, len(index.ids), allowed, index.ids, index.seqs)
    ]
    if recent is not None:
        candidates.append(recent.nearest(query, _allowed(recent.ids, matching)))
    return top(candidates, limit)


def _matching(table: Any, predicate: str | None) -> pa.ChunkedArray | None:
    """The ids of the rows ``predicate`` matches (``None``: no filter)."""
    return None if predicate is None else select(table, predicate, [layout.ID]).column(layout.ID)


def _allowed(ids: Any, matching: pa.ChunkedArray | None) -> np.ndarray[Any, Any] | None:
    return None if matching is None else np.asarray(pc.is_in(ids, value_set=matching))


class IndexFiles:
    """Index files under the record store's root, local or on S3 (the filesystem is set up on
    first use: a process that never searches sparse vectors never pays for it)."""

    def __init__(self, root: str, storage_options: Mapping[str, str]) -> None:
        self.local = not root.startswith("s3://")
        self.root = os.path.abspath(root) if self.local else root.removeprefix("s3://").rstrip("/")
        self._options = dict(storage_options)

    @functools.cached_property
    def fs(self) -> pafs.FileSystem:
        return pafs.LocalFileSystem() if self.local else s3_filesystem(self._options)

    def directory(self, collection_id: str, key: str) -> str:
        return f"{self.root}/{collection_id}.lance/{INDEX_DIR}/{layout.encode_key(key)}"

    def versions(self, collection_id: str, key: str) -> list[int]:
        selector = pafs.FileSelector(self.directory(collection_id, key), allow_not_found=True)
        names = [info.base_name for info in self.fs.get_file_info(selector)]
        return sorted(int(n.removesuffix(".arrow")) for n in names if n.endswith(".arrow"))

    def read(self, collection_id: str, key: str, version: int) -> Index:
        path = f"{self.directory(collection_id, key)}/{version:020d}.arrow"
        with self.fs.open_input_file(path) as source:
            return Index(pa.ipc.open_file(source).read_all())

    def write(self, collection_id: str, key: str, version: int, content: pa.Table) -> None:
        directory = self.directory(collection_id, key)
        path = f"{directory}/{version:020d}.arrow"
        target = path  # an S3 object appears whole; a local file does once renamed
        if self.local:
            self.fs.create_dir(directory, recursive=True)
            target = f"{path}.{os.getpid()}.tmp"
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with (
            self.fs.open_output_stream(target) as sink,
            pa.ipc.new_file(sink, content.schema, options=options) as writer,
        ):
            writer.write_table(content)
        if self.local:
            self.fs.move(target, path)
        for old in self.versions(collection_id, key)[:-KEPT_VERSIONS]:
            self.fs.delete_file(f"{directory}/{old:020d}.arrow")


class SparseIndexes:
    """Builds indexes (:meth:`maintain`) and searches with them (:meth:`nearest`), keeping
    the loaded ones in memory up to ``max_bytes``."""

    def __init__(self, files: IndexFiles, max_bytes: int) -> None:
        self.files = files
        self.max_bytes = max_bytes
        # (collection id, key) -> (table version last checked, the index serving it or None)
        self._loaded: OrderedDict[tuple[str, str], tuple[int, Index | None]] = OrderedDict()
        self._lock = threading.Lock()

    def maintain(self, table: Any, collection: Collection, policy: IndexPolicy) -> dict[str, Any]:
        """Index each sparse-indexed key of a collection past the threshold at the table's
        latest version (once per version)."""
        keys = collection_schema.sparse_indexes(collection.schema)
        started = time.time_ns()
        table.checkout_latest()
        if not keys or int(table.count_rows()) < policy.threshold:
            return {}
        version, names = int(table.version), list(table.schema.names)
        built = []
        for key in keys:
            if version in self.files.versions(collection.id, key):
                continue
            column = layout.metadata_column(key, layout.SPARSE)
            wanted = [layout.ID, layout.SEQ, layout.WRITTEN, column]
            data = select(table, None, [c for c in wanted if c in names])
            if layout.WRITTEN not in data.column_names:
                data = data.append_column(layout.WRITTEN, pa.nulls(data.num_rows, pa.int64()))
            content = Index.build(data, column, version, started - WRITE_WINDOW_NS)
            self.files.write(collection.id, key, version, content)
            built.append(key)
        return {"sparse_indexes": built} if built else {}

    def index(self, table: Any, collection_id: str, key: str) -> Index | None:
        """The newest index of ``key`` no newer than the table's version, if any."""
        version = int(table.version)
        with self._lock:
            cached = self._loaded.get((collection_id, key))
            if cached is not None:
                self._loaded.move_to_end((collection_id, key))
                if cached[0] == version:
                    return cached[1]
        usable = [v for v in self.files.versions(collection_id, key) if v <= version]
        index = None if cached is None else cached[1]
        if usable and (index is None or index.version != usable[-1]):
            try:
                index = self.files.read(collection_id, key, usable[-1])
            except (OSError, pa.ArrowInvalid):  # pruned meanwhile by a newer build: scan
                index = None
        elif not usable:
            index = None
        with self._lock:
            self._loaded[(collection_id, key)] = (version, index)
            self._evict()
        return index

    def nearest(
        self,
        table: Any,
        snapshot: Snapshot | None,
        collection_id: str,
        key: str,
        vector: SparseVector,
        limit: int,
        request_filter: Filter,
        bm25: bool,
    ) -> Hits:
        """The ``limit`` rows matching ``request_filter`` nearest to ``vector`` under ``key``:
        from the key's index and the rows written since, else from the table's in-memory
        ``snapshot`` (the current version), else from a scan of the table."""
        column = layout.metadata_column(key, layout.SPARSE)
        names = list(table.schema.names)
        predicate = to_sql(request_filter, names)
        index = self.index(table, collection_id, key)
        if index is None and snapshot is not None:
            mask = row_mask(request_filter, snapshot.data)
            if mask is None:  # a regex, which the engine evaluates
                mask = _allowed(snapshot.data.column(layout.ID), _matching(table, predicate))
            return scan(snapshot.data, column, vector, limit, mask, bm25, snapshot.live)
        if index is None:
            data = select(table, None, [c for c in (layout.ID, layout.SEQ, column) if c in names])
            allowed = _allowed(data.column(layout.ID), _matching(table, predicate))
            return scan(data, column, vector, limit, allowed, bm25)
        return _indexed(table, index, names, column, vector, limit, predicate, bm25)

    def unindexed(self, table: Any, collection: Collection, policy: IndexPolicy) -> int:
        """Rows the sparse indexes do not cover yet (0 below the threshold)."""
        rows = int(table.count_rows())
        if rows < policy.threshold:
            return 0
        worst = 0
        names = list(table.schema.names)
        for key in collection_schema.sparse_indexes(collection.schema):
            index = self.index(table, collection.id, key)
            if index is None:
                return rows
            worst = max(worst, changes(table, index, names, [layout.ID, layout.WRITTEN]).count)
        return worst

    def forget(self, collection_id: str | None = None) -> None:
        with self._lock:
            for entry in list(self._loaded):
                if collection_id is None or entry[0] == collection_id:
                    del self._loaded[entry]

    def _evict(self) -> None:
        total = sum(i.nbytes for _, i in self._loaded.values() if i is not None)
        while total > self.max_bytes and len(self._loaded) > 1:
            _, (_, evicted) = self._loaded.popitem(last=False)
            total -= 0 if evicted is None else evicted.nbytes
