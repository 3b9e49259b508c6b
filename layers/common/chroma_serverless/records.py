"""The record store: one LanceDB table per collection under a root URI (local dir or ``s3://``).

Chroma's write semantics live here, once: add ignores ids that exist, update ignores ids that do
not, update/upsert merge metadata per key (``None`` removes a key) and replace only the columns
sent. ``id`` is non-null and declared the table's primary key, so concurrent upserts of one new id
from several processes commit one row (shared/docs/lancedb-facts.md §1).
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import Bitmap, BTree, IvfPq, LabelList

from chroma_serverless import layout
from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.filters import to_sql
from chroma_serverless.masks import row_mask
from chroma_serverless.snapshot import Snapshot, SnapshotCache
from chroma_serverless.types import Filter, GetResult, IndexPolicy, QueryResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from chroma_serverless.types import (
        Collection,
        DeleteRequest,
        GetRequest,
        Include,
        Metadata,
        QueryRequest,
        RecordBatch,
        Space,
        UpdateMetadata,
        Vectors,
    )

LANCE_DISTANCE: dict[Space, str] = {"l2": "l2", "cosine": "cosine", "ip": "dot"}
SCALAR_TYPES: dict[str, pa.DataType] = {
    "s": pa.string(),
    "i": pa.int64(),
    "f": pa.float64(),
    "b": pa.bool_(),
}
KIND_TYPES = {**SCALAR_TYPES, **{k + "a": pa.list_(t) for k, t in SCALAR_TYPES.items()}}
SCHEMA_RETRIES = 10
REGEX_ERRORS = ("regex parse error", "Regular expression did not compile")
WRITE_RETRIES = 5
# A write built against a schema another writer has since changed: pyarrow's lookup of a column
# the handle's schema lacks, and LanceDB refusing data with a column its table version lacks.
STALE_SCHEMA = ("does not exist in schema", "not found in target schema")
DROP_RETRIES = 5
P = ParamSpec("P")
R = TypeVar("R")


def _retry_on_conflict(write: Callable[P, R]) -> Callable[P, R]:
    """Re-run a whole write (re-reading what it merges) when a concurrent commit it cannot be
    rebased on (e.g. a compaction rewriting the same fragments) wins, or when the table's schema
    changed under it (another process or thread added a metadata column between this write
    reading the schema and committing). Each run starts at the latest version (``_open``), so
    the retry sees the new schema. Writes are idempotent."""

    @functools.wraps(write)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(WRITE_RETRIES):
            try:
                return write(*args, **kwargs)
            except (RuntimeError, OSError, ValueError, KeyError) as exc:
                if not _retryable(exc) or attempt == WRITE_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")

    return retrying


def _retryable(exc: Exception) -> bool:
    message = str(exc).lower()
    return "conflict" in message or any(marker in message for marker in STALE_SCHEMA)


class RecordStore(Protocol):
    """Records of collections, addressed by collection id. Callers validate batches first."""

    def add(self, collection: Collection, batch: RecordBatch) -> None:
        """Insert records whose ids are new; existing ids are left untouched."""

    def upsert(self, collection: Collection, batch: RecordBatch) -> None:
        """Insert new ids; update existing ones as :meth:`update` does."""

    def update(self, collection: Collection, batch: RecordBatch) -> None:
        """Replace the columns sent and merge metadata for ids that exist; ignore the rest."""

    def get(self, collection: Collection, request: GetRequest) -> GetResult:
        """Records matching the filter in storage order, after offset, at most limit."""

    def query(self, collection: Collection, request: QueryRequest) -> QueryResult:
        """Exact nearest neighbours per query vector among records matching the filter."""

    def delete(self, collection: Collection, request: DeleteRequest) -> int:
        """Delete matching records (at most ``limit``); returns how many were deleted."""

    def count(self, collection: Collection) -> int:
        """Number of records."""

    def maintain(self, collection: Collection, growing: bool = False) -> dict[str, Any]:
        """Build and refresh indexes, compact, clean old versions; returns what it did.
        ``growing``: writes are still arriving; a collection past the index threshold is then
        left for a later run."""

    def index_status(self, collection: Collection) -> tuple[int, int]:
        """(rows in the vector index, rows searched by scan); all rows count as indexed while
        the collection is below the index threshold, since exact search is then the plan."""

    def drop(self, collection_id: str) -> bool:
        """Remove every record of a collection (a no-op if it has none); ``False`` if some
        storage could not be removed yet (a concurrent maintainer), left for the sweep."""

    def reset(self) -> bool:
        """Remove the records of every collection; ``False`` as :meth:`drop`."""

    def collection_ids(self) -> list[str]:
        """Ids of the collections that have stored records."""


class LanceRecordStore:
    """:class:`RecordStore` on LanceDB. ``uri`` is a directory path or ``s3://bucket/prefix``."""

    def __init__(
        self,
        uri: str,
        storage_options: Mapping[str, str] | None = None,
        policy: IndexPolicy | None = None,
    ) -> None:
        self.policy = policy or IndexPolicy()
        # Tables never re-check their version on their own (each check is a LIST on S3, and
        # one search would make five); instead every operation starts with one explicit check
        # (``_open``), so a write acknowledged by any process is visible to the next operation
        # in any other, and a warm handle keeps its cached index and metadata.
        self._db = lancedb.connect(uri, storage_options=dict(storage_options or {}))
        self._tables: dict[str, Any] = {}
        # id(table) -> (table, version, (column names, indexes)); holding the table keeps its
        # id from being reused by another handle while the entry lives.
        self._snapshots: dict[int, tuple[Any, int, tuple[list[str], list[Any]]]] = {}
        self._lock = threading.Lock()
        self._memory = SnapshotCache(self.policy.memory_mb * 2**20)
        self._creating = threading.Lock()

    # ------------------------------------------------------------------ writes

    @_retry_on_conflict
    def add(self, collection: Collection, batch: RecordBatch) -> None:
        table = self._writable(collection)
        before = table.version
        first = time.time_ns()
        rows = [_new_row(batch, i, first + i) for i in range(len(batch))]
        data = self._to_arrow(table, collection, rows, _batch_columns(batch))
        with _engine_errors():
            done = table.merge_insert(layout.ID).when_not_matched_insert_all().execute(data)
        self._advance(table, before, done.version, lambda old: _inserted(old, data))

    @_retry_on_conflict
    def upsert(self, collection: Collection, batch: RecordBatch) -> None:
        table = self._writable(collection)
        before = table.version
        existing = self._rows_by_id(table, batch.ids)
        first = time.time_ns()
        rows = [
            _merged_row(existing[batch.ids[i]], batch, i)
            if batch.ids[i] in existing
            else _new_row(batch, i, first + i)
            for i in range(len(batch))
        ]
        data = self._to_arrow(table, collection, rows, _batch_columns(batch), full=True)
        with _engine_errors():
            done = (
                table.merge_insert(layout.ID)
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data)
            )
        self._advance(table, before, done.version, lambda old: _replaced(old, data))

    @_retry_on_conflict
    def update(self, collection: Collection, batch: RecordBatch) -> None:
        table = self._open(collection.id)
        if table is None:
            return
        before = table.version
        existing = self._rows_by_id(table, batch.ids)
        rows = [
            _merged_row(existing[record_id], batch, i)
            for i, record_id in enumerate(batch.ids)
            if record_id in existing
        ]
        if not rows:
            return
        data = self._to_arrow(table, collection, rows, _batch_columns(batch), full=True)
        with _engine_errors():
            done = table.merge_insert(layout.ID).when_matched_update_all().execute(data)
        self._advance(table, before, done.version, lambda old: _replaced(old, data))

    @_retry_on_conflict
    def delete(self, collection: Collection, request: DeleteRequest) -> int:
        table = self._open(collection.id)
        if table is None or request.limit == 0:
            return 0
        before = table.version
        doomed = request.filter
        predicate = to_sql(doomed, self._names(table))
        if request.limit is not None:
            keys = _in_order(self._select(table, predicate, [layout.ID, layout.SEQ]))
            doomed = _ids_filter(keys.slice(0, request.limit).column(layout.ID).to_pylist())
            predicate = to_sql(doomed, ())
        with _engine_errors():
            result = table.delete(predicate or "TRUE")
        self._advance(table, before, result.version, lambda old: _without(old, doomed))
        return int(result.num_deleted_rows)

    def drop(self, collection_id: str) -> bool:
        """Remove the table; ``False`` if files remain after a few tries.

        A maintainer (here or in another process) may be writing index or compaction files into
        the table meanwhile: locally removing the directory then fails ("Directory not empty"),
        on S3 objects written after the prefix listing survive it. Retrying covers the first;
        whatever a maintainer writes later it removes itself once it sees the collection gone
        (``maintenance.maintain``), and the sweep removes anything else.
        """
        with self._lock:
            self._tables.pop(collection_id, None)
            self._snapshots.clear()
        self._memory.discard(collection_id)
        for attempt in range(DROP_RETRIES):
            try:
                self._db.drop_table(collection_id)
            except ValueError as exc:
                if "was not found" in str(exc):  # never written, or already dropped
                    return True
            except (RuntimeError, OSError):
                pass
            else:
                return True
            time.sleep(random.uniform(0, 0.02 * 2**attempt))
        return False

    def reset(self) -> bool:
        """Remove every table; ``False`` if some files remain (see :meth:`drop`)."""
        with self._lock:
            self._tables.clear()
            self._snapshots.clear()
        self._memory.clear()
        try:
            self._db.drop_all_tables()
        except (RuntimeError, OSError, ValueError):  # a maintainer writing: one table at a time
            return all([self.drop(collection_id) for collection_id in self.collection_ids()])
        return True

    def collection_ids(self) -> list[str]:
        ids: list[str] = []
        page_token = None
        while True:
            page = self._db.list_tables(page_token=page_token)
            ids.extend(page.tables)
            page_token = page.page_token
            if not page_token:
                return ids

    # ------------------------------------------------------------------ reads

    def count(self, collection: Collection) -> int:
        table = self._open(collection.id)
        return 0 if table is None else int(table.count_rows())

    def get(self, collection: Collection, request: GetRequest) -> GetResult:
        table = self._open(collection.id)
        if table is None or request.limit == 0:
            return _get_result([], request.include)
        snapshot = self._in_memory(collection.id, table)
        mask = None if snapshot is None else row_mask(request.filter, snapshot.data)
        if snapshot is not None and mask is not None:
            columns = _columns(snapshot.data.column_names, request.include)
            rows = snapshot.rows(mask, request.offset, request.limit, columns)
            return _get_result(_records(rows), request.include)
        columns = _columns(self._names(table), request.include)
        predicate = to_sql(request.filter, self._names(table))
        if request.offset == 0 and request.limit is None:
            data = _in_order(self._select(table, predicate, columns))
        else:
            data = self._page(table, predicate, columns, request.offset, request.limit)
        return _get_result(_records(data), request.include)

    def _page(
        self, table: Any, predicate: str | None, columns: list[str], offset: int, limit: int | None
    ) -> pa.Table:
        """One page in insertion order: find the page's keys first, then read only its rows."""
        keys = _in_order(self._select(table, predicate, [layout.ID, layout.SEQ]))
        keys = keys.slice(offset) if limit is None else keys.slice(offset, limit)
        if keys.num_rows == 0 or set(columns) <= set(keys.column_names):
            return keys
        seq = keys.column(layout.SEQ)
        in_range = (
            f"`{layout.SEQ}` >= {pc.min(seq).as_py()} AND `{layout.SEQ}` <= {pc.max(seq).as_py()}"
        )
        data = self._select(
            table, in_range if predicate is None else f"({predicate}) AND {in_range}", columns
        )
        data = data.filter(pc.is_in(data.column(layout.ID), value_set=keys.column(layout.ID)))
        return _in_order(data)

    def query(self, collection: Collection, request: QueryRequest) -> QueryResult:
        table = self._open(collection.id)
        snapshot = None if table is None else self._in_memory(collection.id, table)
        if request.filter.ids is not None:
            self._check_ids_exist(table, request.filter.ids)
        result = QueryResult(ids=[])
        include = request.include
        for name in ("distances", "embeddings", "documents", "uris", "metadatas"):
            if name in include:
                setattr(result, name, [])
        mask = None if snapshot is None else row_mask(request.filter, snapshot.data)
        for vector in request.embeddings:
            if snapshot is not None and mask is not None:
                columns = _columns(snapshot.data.column_names, include)
                found = snapshot.nearest(vector, request.n_results, mask, collection.space, columns)
                records = _records(found)
            elif table is not None:
                records = self._nearest(table, collection, vector, request)
            else:
                records = []
            result.ids.append([r["id"] for r in records])
            if result.distances is not None:
                result.distances.append([r[layout.DISTANCE] for r in records])
            page = _get_result(records, include)
            for name in ("embeddings", "documents", "uris", "metadatas"):
                if getattr(result, name) is not None:
                    getattr(result, name).append(getattr(page, name))
        return result

    def _advance(
        self, table: Any, before: int, after: int, change: Callable[[pa.Table], pa.Table | None]
    ) -> None:
        """Carry the snapshot of ``before`` over this process's own commit ``after`` instead of
        reading the table again, when nothing else committed in between (versions are
        consecutive) and the result has the table's row count; otherwise it is rebuilt lazily."""
        snapshot = self._memory.get(table.name, before)
        if snapshot is None or after != before + 1:
            return
        data = change(snapshot.data)
        if data is None or data.num_rows != int(table.count_rows()):
            self._memory.discard(table.name)
            return
        self._memory.put(table.name, Snapshot(after, data))

    def _in_memory(self, collection_id: str, table: Any) -> Snapshot | None:
        """The table's current version in memory, if it is small enough to hold."""
        version = table.version
        snapshot = self._memory.get(collection_id, version)
        if snapshot is not None:
            return snapshot
        if int(table.count_rows()) > self.policy.memory_rows:
            self._memory.discard(collection_id)
            return None
        with _engine_errors():
            snapshot = Snapshot(version, table.to_arrow())
        self._memory.put(collection_id, snapshot)
        return snapshot

    def _check_ids_exist(self, table: Any | None, ids: list[str]) -> None:
        """A query restricted to ids must name existing records: Chroma's server fails such a
        query (500 "Error finding id"); here it is the caller's error, naming the ids."""
        found: set[str] = set()
        if table is not None and ids:
            found = set(self._rows_of(table, ids, ()).column(layout.ID).to_pylist())
        missing = [i for i in dict.fromkeys(ids) if i not in found]
        if missing:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            shown = ", ".join(missing[:10]) + more
            raise InvalidArgumentError(
                f"Error finding id: the query's ids name records that do not exist: {shown}"
            )

    def _nearest(
        self, table: Any, collection: Collection, vector: Vectors, request: QueryRequest
    ) -> list[dict[str, Any]]:
        """Nearest records: through the ANN index when there is one (rows added since it was
        built are scanned too, so every acknowledged write is found), exactly otherwise.

        A filter is applied before the search (prefilter). One matching few rows is searched
        exactly (its scalar index finds the rows; ANN partitions might hold too few of them),
        and an ANN answer shorter than ``n_results`` is checked against the number of matching
        rows, so a filtered query never returns fewer results than exist.
        """
        predicate = to_sql(request.filter, self._names(table))
        if self._vector_index(table) is None:
            return self._search(table, collection, vector, request, predicate, exact=True)
        if predicate is None:
            return self._search(table, collection, vector, request, predicate, exact=False)
        with _engine_errors():
            matching = int(table.count_rows(predicate))
        exact = matching <= self.policy.exact_filter_rows
        records = self._search(table, collection, vector, request, predicate, exact)
        if not exact and len(records) < min(request.n_results, matching):
            records = self._search(table, collection, vector, request, predicate, exact=True)
        return records

    def _search(
        self,
        table: Any,
        collection: Collection,
        vector: Vectors,
        request: QueryRequest,
        predicate: str | None,
        exact: bool,
    ) -> list[dict[str, Any]]:
        search = (
            table.search(vector, vector_column_name=layout.EMBEDDING)
            .distance_type(LANCE_DISTANCE[collection.space])
            .limit(request.n_results)
            .select([*_columns(self._names(table), request.include), layout.DISTANCE])
        )
        if exact:
            search = search.bypass_vector_index()
        else:
            search = search.nprobes(self._nprobes(collection, table)).refine_factor(
                self.policy.refine_factor
            )
        if predicate is not None:
            search = search.where(predicate, prefilter=True)
        with _engine_errors():
            return _records(search.to_arrow())

    def _nprobes(self, collection: Collection, table: Any = None) -> int:
        """Partitions to probe: at least ``policy.nprobes`` and ``policy.probe_percent`` of the
        index's partitions, scaled by Chroma's ``ef_search`` (default 100)."""
        hnsw = collection.configuration.get("hnsw") or {}
        ef_search = hnsw.get("ef_search", 100) if isinstance(hnsw, dict) else 100
        base = self.policy.nprobes
        index = None if table is None else self._vector_index(table)
        if index is not None:
            partitions = max(1, int(index.num_indexed_rows or 0) // self.policy.rows_per_partition)
            base = max(base, -(-partitions * self.policy.probe_percent // 100))
        return max(1, round(base * float(ef_search) / 100))

    def _vector_index(self, table: Any) -> Any | None:
        """The ANN index on ``embedding``, remembered per table version (listing indexes reads
        storage), or ``None``."""
        indices = self._snapshot(table)[1]
        return next((i for i in indices if i.columns == [layout.EMBEDDING]), None)

    def _names(self, table: Any) -> list[str]:
        """The table's column names, remembered per table version."""
        return self._snapshot(table)[0]

    def _snapshot(self, table: Any) -> tuple[list[str], list[Any]]:
        version = table.version
        with self._lock:
            cached = self._snapshots.get(id(table))
        if cached is not None and cached[0] is table and cached[1] == version:
            return cached[2]
        snapshot = (list(table.schema.names), list(table.list_indices()))
        with self._lock:
            self._snapshots[id(table)] = (table, version, snapshot)
        return snapshot

    # ------------------------------------------------------------------ maintenance

    def index_status(self, collection: Collection) -> tuple[int, int]:
        table = self._open(collection.id)
        if table is None:
            return 0, 0
        rows = int(table.count_rows())
        index = self._vector_index(table)
        if index is not None:
            unindexed = int(index.num_unindexed_rows or 0)
            return rows - unindexed, unindexed
        if rows < self.policy.threshold:
            return rows, 0
        return 0, rows

    @_retry_on_conflict
    def maintain(self, collection: Collection, growing: bool = False) -> dict[str, Any]:
        """Index, compact and clean one collection; safe to run while others read and write
        (a write committed between its steps makes it start over, from what is already built).

        Builds the IVF-PQ index once the collection passes ``policy.threshold`` rows, a scalar
        index on every metadata column (BTree; Bitmap for bools; LabelList for lists) and on
        ``id``/``seq``; then ``optimize`` folds new rows into the indexes, compacts small
        fragments and removes versions older than the retention window.
        """
        table = self._open(collection.id)
        if table is None:
            return {"rows": 0}
        report: dict[str, Any] = {"rows": int(table.count_rows())}
        if growing and report["rows"] >= self.policy.threshold:
            # A large collection still being written (an ingest): compacting now would rewrite
            # it again and again (each rewrite kept for the retention window) and its vector
            # index would be sized from a fraction of its rows; all waits for the writes to end.
            report["deferred"] = True
            return report
        indexed = {tuple(index.columns) for index in table.list_indices()}
        if (layout.EMBEDDING,) not in indexed and report["rows"] >= self.policy.threshold:
            dimension = int(table.schema.field(layout.EMBEDDING).type.list_size)
            config = IvfPq(
                distance_type=LANCE_DISTANCE[collection.space],  # type: ignore[arg-type]
                num_partitions=max(1, report["rows"] // self.policy.rows_per_partition),
                num_sub_vectors=max(1, dimension // self.policy.sub_vector_dims),
                num_bits=self.policy.num_bits,
                sample_rate=self.policy.sample_rate,
                max_iterations=self.policy.max_iterations,
            )
            with _engine_errors():
                table.create_index(layout.EMBEDDING, config=config)
            report["vector_index"] = "built"
        scalar = [n for n in table.schema.names if n not in (layout.EMBEDDING, layout.DOCUMENT)]
        for name in scalar:
            if (name,) not in indexed and name != layout.URI:
                table.create_index(name, config=_scalar_index(table.schema.field(name).type))
                report.setdefault("scalar_indexes", []).append(name)
        stats = table.stats()
        unindexed = sum(int(index.num_unindexed_rows or 0) for index in table.list_indices())
        if unindexed or stats["fragment_stats"]["num_fragments"] > self.policy.fragment_target:
            table.optimize(cleanup_older_than=timedelta(seconds=self.policy.retention_seconds))
            report["optimized"] = True
        report["fragments"] = table.stats()["fragment_stats"]["num_fragments"]
        return report

    def _select(self, table: Any, predicate: str | None, columns: list[str]) -> pa.Table:
        query = table.search().select(columns).limit(None)  # a plain search defaults to 10
        if predicate is not None:
            query = query.where(predicate)
        with _engine_errors():
            return query.to_arrow()

    def _rows_by_id(self, table: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored rows of ``ids``, to merge into."""
        data = self._rows_of(table, ids, ("embeddings", "documents", "uris", "metadatas"))
        return {row["id"]: row for row in _records(data)}

    def _rows_of(self, table: Any, ids: list[str], include: Sequence[Include]) -> pa.Table:
        """The rows of ``ids`` (``id``, ``seq`` and the columns of ``include``): from the
        table's snapshot when one of this very version is in memory, else from the engine."""
        snapshot = self._memory.get(table.name, table.version)
        if snapshot is None:
            columns = _columns(self._names(table), include)
            return self._select(table, to_sql(_ids_filter(ids), ()), columns)
        mask = row_mask(_ids_filter(ids), snapshot.data)
        assert mask is not None  # an ids filter never needs the engine
        return snapshot.rows(mask, 0, None, _columns(snapshot.data.column_names, include))

    # ------------------------------------------------------------------ tables

    def _open(self, collection_id: str) -> Any | None:
        """The collection's table at its latest version, or ``None`` if it has no records."""
        with self._lock:
            table = self._tables.get(collection_id)
        if table is not None:
            try:
                table.checkout_latest()  # the one version check of this operation
                return table
            except Exception:  # dropped by another process: forget the handle
                with self._lock:
                    self._tables.pop(collection_id, None)
        try:
            table = self._db.open_table(collection_id)
        except ValueError:  # "Table ... was not found": no record was ever written
            return None
        with self._lock:
            return self._tables.setdefault(collection_id, table)

    def _writable(self, collection: Collection) -> Any:
        table = self._open(collection.id)
        if table is not None:
            return table
        if collection.dimension is None:
            raise InvalidArgumentError("Collection dimension is unknown; add embeddings first")
        with self._creating:  # one creation per process; other processes are handled below
            if self._open(collection.id) is None:
                self._create(collection.id, collection.dimension)
        opened = self._open(collection.id)
        assert opened is not None
        return opened

    def _create(self, collection_id: str, dimension: int) -> None:
        """Create the table of a collection's first records.

        Creation is not atomic across processes: a creator that found no table but commits
        after another process created it (and wrote into it) lands as an overwrite on top,
        wiping those writes (measured on S3: six writers of a new collection in three
        processes lost the first batches of some). Such a late creator sees a version above 1
        and puts back the rows of the version before its own; writers that committed after it
        kept theirs, and ids already present win.
        """
        try:
            table = self._db.create_table(collection_id, schema=base_schema(dimension))
        except ValueError as exc:  # another writer created it first
            if "already exists" not in str(exc):
                raise
            return
        created = int(table.version)
        table.set_unenforced_primary_key(layout.ID)  # type: ignore[attr-defined]
        if created > 1:
            self._put_back(collection_id, created - 1)

    @_retry_on_conflict
    def _put_back(self, collection_id: str, version: int) -> None:
        """Re-insert the rows of ``version`` that the latest version lacks."""
        before = self._db.open_table(collection_id)
        before.checkout(version)
        rows = before.to_arrow()
        if rows.num_rows == 0:
            return
        table = self._open(collection_id)
        assert table is not None
        metadata = [f for f in rows.schema if layout.parse_metadata_column(f.name) is not None]
        self._ensure_columns(table, metadata)
        with _engine_errors():
            table.merge_insert(layout.ID).when_not_matched_insert_all().execute(rows)

    def _ensure_columns(self, table: Any, fields: Sequence[pa.Field]) -> pa.Schema:
        """Add missing metadata columns; concurrent schema changes are retried. Returns the
        schema that has them all: the handle is shared by every thread of the process, so a
        second read of ``table.schema`` is not guaranteed to be the version checked here."""
        for _ in range(SCHEMA_RETRIES):
            schema: pa.Schema = table.schema
            missing = [f for f in fields if f.name not in schema.names]
            if not missing:
                return schema
            try:
                table.add_columns(missing)
            except (RuntimeError, ValueError) as exc:
                message = str(exc)
                if "already exists" not in message and "conflict" not in message.lower():
                    raise
                table.checkout_latest()
        raise RuntimeError("could not add metadata columns after concurrent schema changes")

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
            layout.metadata_column(key, layout.value_kind(value)): (key, layout.value_kind(value))
            for row in rows
            for key, value in (row["metadata"] or {}).items()
        }
        schema = self._ensure_columns(
            table, [metadata_field(k, kind) for k, kind in wanted.values()]
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
            layout.EMBEDDING: _vectors_array(
                [row["embedding"] for row in rows], collection.dimension
            ),
        }
        for column in (layout.DOCUMENT, layout.URI):
            if full or column in sent:
                arrays[column] = pa.array([row[column] for row in rows], pa.string())
        for name, (key, kind) in wanted.items():
            values = [_value_of_kind(row["metadata"], key, kind) for row in rows]
            arrays[name] = pa.array(values, KIND_TYPES[kind])
        return pa.table(arrays, schema=pa.schema([schema.field(name) for name in arrays]))


def base_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field(layout.ID, pa.string(), nullable=False),
            pa.field(layout.SEQ, pa.int64(), nullable=False),
            pa.field(layout.EMBEDDING, pa.list_(pa.float32(), dimension), nullable=True),
            pa.field(layout.DOCUMENT, pa.string(), nullable=True),
            pa.field(layout.URI, pa.string(), nullable=True),
        ]
    )


def _scalar_index(arrow_type: pa.DataType) -> Any:
    if pa.types.is_list(arrow_type):
        return LabelList()
    if pa.types.is_boolean(arrow_type):
        return Bitmap()
    return BTree()


def metadata_field(key: str, kind: str) -> pa.Field:
    return pa.field(layout.metadata_column(key, kind), KIND_TYPES[kind], nullable=True)


@contextlib.contextmanager
def _engine_errors() -> Iterator[None]:
    """A bad regex is the caller's error (LanceDB reports it while planning or while running);
    everything else stays an internal error."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:
        message = str(exc)
        for marker in REGEX_ERRORS:
            if marker in message:
                detail = message[message.index(marker) :].splitlines()
                raise InvalidArgumentError(
                    f"Invalid regex in where document: {' '.join(detail[:4])}"
                ) from exc
        raise


def _inserted(old: pa.Table, data: pa.Table) -> pa.Table:
    """``old`` plus the rows of ``data`` whose ids are new (an add)."""
    new = data.filter(pc.invert(pc.is_in(data.column(layout.ID), value_set=old.column(layout.ID))))
    return pa.concat_tables([old, _conformed(new, old.schema)])


def _replaced(old: pa.Table, data: pa.Table) -> pa.Table:
    """``old`` with the rows of ``data`` in place of those with the same ids (an upsert)."""
    kept = old.filter(pc.invert(pc.is_in(old.column(layout.ID), value_set=data.column(layout.ID))))
    return pa.concat_tables([kept, _conformed(data, old.schema)])


def _without(old: pa.Table, doomed: Filter) -> pa.Table | None:
    """``old`` less the rows a delete's filter matches (``None``: the filter needs the engine)."""
    mask = row_mask(doomed, old)
    return None if mask is None else old.filter(pa.array(~mask))


def _conformed(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` with every column of ``schema`` (absent ones null), in its order and types."""
    columns = [
        data.column(f.name) if f.name in data.column_names else pa.nulls(data.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _ids_filter(ids: list[str]) -> Filter:
    return Filter(ids=ids)


def _batch_columns(batch: RecordBatch) -> set[str]:
    sent = set()
    if batch.documents is not None:
        sent.add(layout.DOCUMENT)
    if batch.uris is not None:
        sent.add(layout.URI)
    return sent


def _in_order(data: pa.Table) -> pa.Table:
    return data.sort_by([(layout.SEQ, "ascending"), (layout.ID, "ascending")])


def _new_row(batch: RecordBatch, i: int, seq: int) -> dict[str, Any]:
    metadata = batch.metadatas[i] if batch.metadatas is not None else None
    return {
        "id": batch.ids[i],
        layout.SEQ: seq,
        "embedding": batch.embeddings[i] if batch.embeddings is not None else None,
        layout.DOCUMENT: batch.documents[i] if batch.documents is not None else None,
        layout.URI: batch.uris[i] if batch.uris is not None else None,
        "metadata": _merge(None, metadata),
    }


def _merged_row(old: dict[str, Any], batch: RecordBatch, i: int) -> dict[str, Any]:
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


def _value_of_kind(metadata: Metadata | None, key: str, kind: str) -> Any:
    if not metadata or key not in metadata:
        return None
    value = metadata[key]
    return value if layout.value_kind(value) == kind else None


def _vectors_array(vectors: list[Vectors | None], dimension: int) -> pa.Array:
    flat = np.asarray(vectors, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dimension)


def _columns(names: Sequence[str], include: Sequence[Include]) -> list[str]:
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


def _records(data: pa.Table) -> list[dict[str, Any]]:
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
        for record, value in zip(records, values, strict=True):
            if parsed is None:
                record[name] = value
            elif value is not None:
                if record["metadata"] is None:
                    record["metadata"] = {}
                record["metadata"][parsed[0]] = value
    return records


def _get_result(records: list[dict[str, Any]], include: Sequence[Include]) -> GetResult:
    result = GetResult(ids=[r["id"] for r in records])
    if "embeddings" in include:
        result.embeddings = [r["embedding"] for r in records]
    if "documents" in include:
        result.documents = [r.get(layout.DOCUMENT) for r in records]
    if "uris" in include:
        result.uris = [r.get(layout.URI) for r in records]
    if "metadatas" in include:
        result.metadatas = [r["metadata"] for r in records]
    return result
