from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import lancedb
import pyarrow as pa
import pyarrow.compute as pc

from chroma_serverless import layout
from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.filters import to_sql
from chroma_serverless.masks import row_mask
from chroma_serverless.records import arrow, bulk, clones, indexing, search, sparse
from chroma_serverless.records.engine import (
    Descriptions,
    checkout_latest,
    engine_errors,
    retry_on_conflict,
    select,
)
from chroma_serverless.records.memory import MemoryTier
from chroma_serverless.records.versions import Versions
from chroma_serverless.types import IndexPolicy, QueryResult, RestorePoint

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from chroma_serverless.columnar import ColumnBatch
    from chroma_serverless.snapshot import Snapshot
    from chroma_serverless.types import (
        Collection,
        DeleteRequest,
        Filter,
        GetRequest,
        GetResult,
        Include,
        QueryRequest,
        RecordBatch,
        SparseVector,
    )

SCHEMA_RETRIES = 10
DROP_RETRIES = 5
SCAN_ROWS = 10_000
T = TypeVar("T")
Opened = tuple[Any, int]  # a table handle and the version its check found


@dataclass(frozen=True)
class Held:
    """An open handle, the version its last check found (writes move the handle past it),
    whether ``Versions`` can check it, and when (``time.monotonic()``) that version was last
    confirmed the newest."""

    table: Any
    version: int
    named: bool
    confirmed_at: float


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
        """(rows in every index, rows some search scans: in neither the vector index nor a
        sparse index); all rows count as indexed while the collection is below the index
        threshold, since exact search is then the plan."""

    def drop(self, collection_id: str) -> bool:
        """Remove every record of a collection (a no-op if it has none); ``False`` if some
        storage could not be removed yet (a concurrent maintainer), left for the sweep."""

    def reset(self) -> bool:
        """Remove the records of every collection; ``False`` as :meth:`drop`."""

    def fork(self, source_id: str, fork_id: str, version: int | None = None) -> int | None:
        """Give ``fork_id`` the records of ``source_id`` as they are now (or were at
        ``version``, one of :meth:`restore_points`), copy-on-write: no record is copied, the
        source's files stay shared (and pinned in the source) until :meth:`unpin`. Returns the
        records' dimension, ``None`` if the source has none (the fork then starts empty)."""

    def unpin(self, source_id: str, fork_id: str) -> None:
        """``fork_id`` no longer needs the files it shares with ``source_id``."""

    def collection_ids(self) -> list[str]:
        """Ids of the collections that have stored records."""

    def sparse_knn(
        self,
        collection: Collection,
        key: str,
        vector: SparseVector,
        limit: int,
        request_filter: Filter,
        bm25: bool,
    ) -> list[tuple[str, float]]:
        """The ``limit`` records matching the filter nearest to ``vector`` by their sparse
        vector under ``key`` (``1 - dot``; with ``bm25`` the query is weighted by IDF), among
        those sharing a term with it: ``(id, distance)``, ascending, ties in insertion order."""

    def upsert_columns(self, collection: Collection, batch: ColumnBatch) -> None:
        """:meth:`upsert` of a column batch in which every record has an embedding."""

    def scan(
        self, collection: Collection, version: int | None = None, rows: int = SCAN_ROWS
    ) -> Iterator[ColumnBatch]:
        """Every record of one version (default: the latest, pinned when the scan starts), in
        batches of about ``rows``, in storage order."""

    def restore_points(self, collection: Collection) -> list[RestorePoint]:
        """The versions still kept (the retention window and the latest), oldest first."""

    def restore(self, collection: Collection, version: int) -> int:
        """Make the records of ``version`` the latest, as a new version (so it can be undone);
        returns that new version."""


class LanceRecordStore:
    """:class:`RecordStore` on LanceDB. ``uri`` is a directory path or ``s3://bucket/prefix``."""

    def __init__(
        self,
        uri: str,
        storage_options: Mapping[str, str] | None = None,
        policy: IndexPolicy | None = None,
    ) -> None:
        self.policy = policy or IndexPolicy()
        # Tables never re-check their version on their own (each engine check is a LIST on S3,
        # and one search would make five); instead every operation starts with one explicit
        # check (``_latest``: by the next version's manifest, ``versions.py``, the engine only
        # once the version moved), so a write acknowledged by any process is visible to the
        # next operation in any other, and a warm handle keeps its cached index and metadata.
        self._storage_options = dict(storage_options or {})
        self._db = lancedb.connect(uri, storage_options=self._storage_options)
        self._tables: dict[str, Held] = {}
        self._versions = Versions(uri, self._storage_options, self.policy.retention_seconds)
        self._described = Descriptions()
        self._lock = threading.Lock()
        self._memory = MemoryTier(self._db, self.policy)
        self._creating = threading.Lock()
        self._sparse = sparse.SparseIndexes(
            sparse.IndexFiles(uri, storage_options or {}), self.policy.memory_mb * 2**20
        )

    # ------------------------------------------------------------------ writes

    @retry_on_conflict
    def add(self, collection: Collection, batch: RecordBatch) -> None:
        table = self._writable(collection)
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
        table = self._writable(collection)
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
        table = self._open(collection.id)
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
        table = self._open(collection.id)
        if table is None or request.limit == 0:
            return 0
        before = table.version
        doomed = request.filter
        predicate = to_sql(doomed, self._described.of(table).names)
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
            self._described.clear()
        self._memory.discard(collection_id)
        self._sparse.forget(collection_id)
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
            self._described.clear()
        self._memory.clear()
        self._sparse.forget()
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

    # ------------------------------------------------------------------ forks

    def fork(self, source_id: str, fork_id: str, version: int | None = None) -> int | None:
        source = self._open(source_id) if version is None else self._version(source_id, version)
        if source is None:
            return None
        forked = clones.clone(self._db, source, fork_id, self._storage_options, version)
        return int(forked.schema.field(layout.EMBEDDING).type.list_size)

    def unpin(self, source_id: str, fork_id: str) -> None:
        source = self._open(source_id)
        if source is not None:
            clones.unpin(source, fork_id)

    # ------------------------------------------------------------------ reads

    def count(self, collection: Collection) -> int:
        return self._read(collection.id, lambda opened: self._count(collection, opened))

    def _count(self, collection: Collection, opened: Opened | None) -> int:
        if opened is None:
            return 0
        snapshot = self._memory.at(collection.id, opened[1])
        return int(opened[0].count_rows()) if snapshot is None else snapshot.num_rows

    def get(self, collection: Collection, request: GetRequest) -> GetResult:
        return self._read(collection.id, lambda opened: self._get(collection, request, opened))

    def _get(self, collection: Collection, request: GetRequest, opened: Opened | None) -> GetResult:
        if opened is None or request.limit == 0:
            return arrow.get_result([], request.include)
        table, version = opened
        snapshot = self._memory.current(collection, table, version)
        mask = None if snapshot is None else row_mask(request.filter, snapshot.data)
        if snapshot is not None and mask is not None:
            columns = arrow.columns(snapshot.data.column_names, request.include)
            rows = snapshot.rows(mask, request.offset, request.limit, columns)
            return arrow.get_result(arrow.records(rows), request.include)
        columns = arrow.columns(self._described.of(table).names, request.include)
        predicate = to_sql(request.filter, self._described.of(table).names)
        if request.offset == 0 and request.limit is None:
            data = arrow.in_order(select(table, predicate, columns))
        else:
            data = self._page(table, predicate, columns, request.offset, request.limit)
        return arrow.get_result(arrow.records(data), request.include)

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

    def query(self, collection: Collection, request: QueryRequest) -> QueryResult:
        return self._read(collection.id, lambda opened: self._query(collection, request, opened))

    def _query(
        self, collection: Collection, request: QueryRequest, opened: Opened | None
    ) -> QueryResult:
        table = None if opened is None else opened[0]
        snapshot = None if opened is None else self._memory.current(collection, *opened)
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
                columns = arrow.columns(snapshot.data.column_names, include)
                found = snapshot.nearest(
                    vector,
                    request.n_results,
                    mask,
                    collection.space,
                    columns,
                    self._memory.effort(snapshot, collection),
                    exact_rows=self.policy.threshold,
                )
                records = arrow.records(found)
            elif table is not None:
                records = search.nearest(
                    table, self._described.of(table), self.policy, collection, vector, request
                )
            else:
                records = []
            result.ids.append([r["id"] for r in records])
            if result.distances is not None:
                result.distances.append([r[layout.DISTANCE] for r in records])
            page = arrow.get_result(records, include)
            for name in ("embeddings", "documents", "uris", "metadatas"):
                if getattr(result, name) is not None:
                    getattr(result, name).append(getattr(page, name))
        return result

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

    # ------------------------------------------------------------------ maintenance

    def index_status(self, collection: Collection) -> tuple[int, int]:
        table = self._open(collection.id)
        if table is None:
            return 0, 0
        indexed, unindexed = indexing.index_status(table, self._described.of(table), self.policy)
        missed = self._sparse.unindexed(table, collection, self.policy)
        if missed > unindexed:
            return indexed + unindexed - missed, missed
        return indexed, unindexed

    @retry_on_conflict
    def maintain(self, collection: Collection, growing: bool = False) -> dict[str, Any]:
        table = self._open(collection.id)
        if table is None:
            return {"rows": 0}
        report = indexing.maintain(table, collection, self.policy, growing)
        if not report.get("deferred"):
            report.update(self._sparse.maintain(table, collection, self.policy))
        return report

    def _rows_by_id(self, table: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored rows of ``ids``, to merge into."""
        data = self._rows_of(table, ids, ("embeddings", "documents", "uris", "metadatas"))
        return {row["id"]: row for row in arrow.records(data)}

    def _rows_of(self, table: Any, ids: list[str], include: Sequence[Include]) -> pa.Table:
        """The rows of ``ids`` (``id``, ``seq`` and the columns of ``include``): from the
        table's snapshot when one of this very version is in memory, else from the engine."""
        snapshot = self._memory.at(table.name, table.version)
        if snapshot is None:
            columns = arrow.columns(self._described.of(table).names, include)
            return select(table, to_sql(arrow.ids_filter(ids), ()), columns)
        mask = row_mask(arrow.ids_filter(ids), snapshot.data)
        assert mask is not None  # an ids filter never needs the engine
        return snapshot.rows(mask, 0, None, arrow.columns(snapshot.data.column_names, include))

    # ------------------------------------------------------------------ tables

    def _open(self, collection_id: str) -> Any | None:
        """The collection's table at its latest version, or ``None`` if it has no records."""
        opened = self._latest(collection_id)
        return None if opened is None else opened[0]

    def _latest(self, collection_id: str, moved: bool = False) -> Opened | None:
        """:meth:`_open` and the version it checked out: the one version check of the
        operation, by the next version's manifest (``versions.py``) unless already known
        ``moved``, else the engine's."""
        with self._lock:
            held = self._tables.get(collection_id)
        if held is not None:
            if not moved and self._confirm(collection_id, held)():
                return held.table, held.version
            started = time.monotonic()
            try:
                version = checkout_latest(held.table)
            except Exception:  # dropped by another process: forget the handle
                with self._lock:
                    self._tables.pop(collection_id, None)
            else:
                with self._lock:
                    self._tables[collection_id] = Held(held.table, version, held.named, started)
                return held.table, version
        started = time.monotonic()
        try:
            table = self._db.open_table(collection_id)
        except ValueError:  # "Table ... was not found": no record was ever written
            return None
        version = int(table.version)
        fresh = Held(table, version, self._versions.named(collection_id, version), started)
        with self._lock:
            held = self._tables.setdefault(collection_id, fresh)
        return held.table, held.version

    def _confirm(self, collection_id: str, held: Held) -> Callable[[], bool]:
        """Start checking whether ``held``'s version is still the newest (``versions.py``);
        returns the wait for the answer (``False`` when that cannot tell), which remembers a
        confirmation."""
        started = time.monotonic()
        if not held.named:
            return lambda: False
        answer = self._versions.unchanged(collection_id, held.version, held.confirmed_at)

        def confirmed() -> bool:
            if not answer():
                return False
            with self._lock:
                if self._tables.get(collection_id) is held:
                    self._tables[collection_id] = Held(held.table, held.version, True, started)
            return True

        return confirmed

    def _read(self, collection_id: str, read: Callable[[Opened | None], T]) -> T:
        """``read`` of the collection's latest version. On S3, when the version held is in
        memory, its check (two HEADs at once, one round trip) runs beside ``read`` of that
        snapshot, which stands once the check confirms it: a warm read then takes the longer of
        the two, not their sum. Only when the version moved is the read done again, on the new
        one."""
        with self._lock:
            held = self._tables.get(collection_id)
        if (
            held is None
            or not held.named
            or not self._versions.remote
            or self._memory.at(collection_id, held.version) is None
        ):
            return read(self._latest(collection_id))
        confirmed = self._confirm(collection_id, held)
        try:
            result = read((held.table, held.version))
        except Exception:
            if confirmed():
                raise
        else:
            if confirmed():
                return result
        return read(self._latest(collection_id, moved=True))

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
            table = self._db.create_table(collection_id, schema=arrow.base_schema(dimension))
        except ValueError as exc:  # another writer created it first
            if "already exists" not in str(exc):
                raise
            return
        created = int(table.version)
        table.set_unenforced_primary_key(layout.ID)  # type: ignore[attr-defined]
        if created > 1:
            self._put_back(collection_id, created - 1)

    @retry_on_conflict
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
        with engine_errors():
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

    # ------------------------------------------------------------------ sparse vectors

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

        return self._read(collection.id, nearest)

    # ------------------------------------------------------------------ bulk and versions

    def upsert_columns(self, collection: Collection, batch: ColumnBatch) -> None:
        """New ids are inserted straight from the columns; ids already stored (a replayed
        import, a reload) take the merge path of :meth:`upsert`."""
        stored = self._insert_new(collection, batch)
        if len(stored):
            self.upsert(collection, batch.take(stored).to_record_batch())

    @retry_on_conflict
    def _insert_new(self, collection: Collection, batch: ColumnBatch) -> list[int]:
        """Insert the records whose ids are new; returns the positions of those it left alone."""
        table = self._writable(collection)
        schema = self._ensure_columns(table, [arrow.WRITTEN_FIELD, *bulk.metadata_fields(batch)])
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

    def scan(
        self, collection: Collection, version: int | None = None, rows: int = SCAN_ROWS
    ) -> Iterator[ColumnBatch]:
        table = self._version(collection.id, version)
        if table is None:
            return
        columns = bulk.data_columns(table.schema.names)
        with engine_errors():
            reader = table.search().select(columns).limit(None).to_batches(rows)
        for data in reader:
            yield bulk.from_layout(data)

    def restore_points(self, collection: Collection) -> list[RestorePoint]:
        table = self._open(collection.id)
        if table is None:
            return []
        return [
            RestorePoint(
                int(v["version"]),
                v["timestamp"].astimezone(UTC),  # LanceDB reports local time, naive
                int(v["metadata"]["total_rows"]),
            )
            for v in sorted(table.list_versions(), key=lambda v: int(v["version"]))
        ]

    @retry_on_conflict
    def restore(self, collection: Collection, version: int) -> int:
        table = self._version(collection.id, version)
        assert table is not None, "restore needs a stored version"
        with engine_errors():
            table.restore()
        return int(table.version)

    def _version(self, collection_id: str, version: int | None) -> Any | None:
        """A handle of its own on one version of the table (``None``: the latest), so pinning
        it never moves the shared handle; ``None`` if the collection has no records."""
        try:
            table = self._db.open_table(collection_id)
        except ValueError:
            return None
        if version is not None:
            table.checkout(version)
        return table


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
