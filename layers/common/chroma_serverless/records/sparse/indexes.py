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

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from chroma_serverless.domain.columns import SPARSE
from chroma_serverless.domain.schema import indexes as schema_indexes
from chroma_serverless.records import layout
from chroma_serverless.records.engine import select
from chroma_serverless.records.masks import row_mask
from chroma_serverless.records.sparse.index import (
    WRITE_WINDOW_NS,
    Index,
    allowed_rows,
    changes,
    indexed,
    matching_ids,
)
from chroma_serverless.records.sparse.scoring import Hits, scan
from chroma_serverless.records.sql import to_sql

if TYPE_CHECKING:
    from chroma_serverless.records.memory.snapshot import Snapshot
    from chroma_serverless.records.sparse.files import IndexFiles
    from chroma_serverless.types import Collection, Filter, IndexPolicy, SparseVector


RECHECK_S = 5.0  # how long a table version's missing index is taken as missing


class SparseIndexes:
    """Builds indexes (:meth:`maintain`) and searches with them (:meth:`nearest`), keeping
    the loaded ones in memory up to ``max_bytes``."""

    def __init__(self, files: IndexFiles, max_bytes: int) -> None:
        self.files = files
        self.max_bytes = max_bytes
        # (collection id, key) -> (table version last checked, the index serving it or None,
        # when (time.monotonic()) to look for a newer one)
        self._loaded: OrderedDict[tuple[str, str], tuple[int, Index | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    def maintain(self, table: Any, collection: Collection, policy: IndexPolicy) -> dict[str, Any]:
        """Index each sparse-indexed key of a collection past the threshold at the table's
        latest version (once per version)."""
        keys = schema_indexes.sparse_indexes(collection.schema)
        started = time.time_ns()
        table.checkout_latest()
        if not keys or int(table.count_rows()) < policy.threshold:
            return {}
        version, names = int(table.version), list(table.schema.names)
        built = []
        for key in keys:
            if version in self.files.versions(collection.id, key):
                continue
            column = layout.metadata_column(key, SPARSE)
            wanted = [layout.ID, layout.SEQ, layout.WRITTEN, column]
            data = select(table, None, [c for c in wanted if c in names])
            if layout.WRITTEN not in data.column_names:
                data = data.append_column(layout.WRITTEN, pa.nulls(data.num_rows, pa.int64()))
            content = Index.build(data, column, version, started - WRITE_WINDOW_NS)
            self.files.write(collection.id, key, version, content)
            built.append(key)
        return {"sparse_indexes": built} if built else {}

    def index(self, table: Any, collection_id: str, key: str) -> Index | None:
        """The newest index of ``key`` no newer than the table's version, if any. Maintenance
        writes a version's index after committing that version, so unless the index found is
        of the version itself, the files are listed again after ``RECHECK_S``."""
        version = int(table.version)
        with self._lock:
            cached = self._loaded.get((collection_id, key))
            if cached is not None:
                self._loaded.move_to_end((collection_id, key))
                exact = cached[1] is not None and cached[1].version == version
                if cached[0] == version and (exact or time.monotonic() < cached[2]):
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
            self._loaded[(collection_id, key)] = (version, index, time.monotonic() + RECHECK_S)
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
        column = layout.metadata_column(key, SPARSE)
        names = list(table.schema.names)
        predicate = to_sql(request_filter, names)
        index = self.index(table, collection_id, key)
        if index is None and snapshot is not None:
            mask = row_mask(request_filter, snapshot.data)
            if mask is None:  # a regex, which the engine evaluates
                mask = allowed_rows(snapshot.data.column(layout.ID), matching_ids(table, predicate))
            return scan(snapshot.data, column, vector, limit, mask, bm25, snapshot.live)
        if index is None:
            data = select(table, None, [c for c in (layout.ID, layout.SEQ, column) if c in names])
            allowed = allowed_rows(data.column(layout.ID), matching_ids(table, predicate))
            return scan(data, column, vector, limit, allowed, bm25)
        return indexed(table, index, names, column, vector, limit, predicate, bm25)

    def unindexed(self, table: Any, collection: Collection, policy: IndexPolicy) -> int:
        """Rows the sparse indexes do not cover yet (0 below the threshold)."""
        rows = int(table.count_rows())
        if rows < policy.threshold:
            return 0
        worst = 0
        names = list(table.schema.names)
        for key in schema_indexes.sparse_indexes(collection.schema):
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
        total = sum(i.nbytes for _, i, _ in self._loaded.values() if i is not None)
        while total > self.max_bytes and len(self._loaded) > 1:
            _, (_, evicted, _) = self._loaded.popitem(last=False)
            total -= 0 if evicted is None else evicted.nbytes
