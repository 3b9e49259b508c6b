"""The record store: :class:`~chroma_serverless.ports.RecordStore` on LanceDB, one table per
collection under a root URI (a local directory or ``s3://``).

It composes the parts of this package: ``tables`` (handles and the version check), ``writes``,
``reads`` (the in-memory tier, ``memory/``, or the engine, as ``plan`` chooses), ``history``
(forks, versions, restore, scans), ``indexing`` and ``sparse/`` (maintenance), ``arrow`` and
``layout`` (records as columns), ``engine`` (what they share about LanceDB).

With a write log (``log``; every store the service runs has one), writes are entries of the
log, acknowledged once durable there; reads, maintenance and the writes that need the table
itself (a delete by filter, an import, a restore) first have the log folded into the table
(``folding``), and reads read the version the log names.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import TYPE_CHECKING, Any

from chroma_serverless.errors import LogTrimmedError
from chroma_serverless.ports import SCAN_ROWS
from chroma_serverless.records import arrow, indexing
from chroma_serverless.records.engine import retry_on_conflict
from chroma_serverless.records.entries import Entry, Operation
from chroma_serverless.records.folding import Folder
from chroma_serverless.records.history import History
from chroma_serverless.records.memory.tier import MemoryTier
from chroma_serverless.records.reads import Reads
from chroma_serverless.records.sparse.files import IndexFiles
from chroma_serverless.records.sparse.indexes import SparseIndexes
from chroma_serverless.records.tables import Tables
from chroma_serverless.records.tail import Tail, Tails
from chroma_serverless.records.writes import Writes
from chroma_serverless.types import IndexPolicy, RecordBatch

FOLD_AT = 64  # a read folds a tail of more entries than this, rather than reading around it

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from chroma_serverless.domain.columns import ColumnBatch
    from chroma_serverless.ports import Log
    from chroma_serverless.types import (
        Collection,
        DeleteRequest,
        Filter,
        GetRequest,
        GetResult,
        LogState,
        QueryRequest,
        QueryResult,
        RestorePoint,
        SparseVector,
    )


class LanceRecordStore:
    """The record store on LanceDB. ``uri`` is a directory path or ``s3://bucket/prefix``."""

    def __init__(
        self,
        uri: str,
        storage_options: Mapping[str, str] | None = None,
        policy: IndexPolicy | None = None,
        log: Log | None = None,
    ) -> None:
        self.policy = policy or IndexPolicy()
        self._log = log
        options = dict(storage_options or {})
        self._tables = Tables(uri, options, self.policy.retention_seconds, self._held_in_memory)
        self._memory = MemoryTier(self._tables.db, self.policy)
        self._sparse = SparseIndexes(IndexFiles(uri, options), self.policy.memory_mb * 2**20)
        self._reads = Reads(self._tables, self._memory, self._sparse, self.policy)
        self._writes = Writes(self._tables, self._memory, self._reads)
        self._history = History(self._tables)
        self._folder = None if log is None else Folder(log, self._tables, self._writes)
        self._tails = Tails()

    def _held_in_memory(self, collection_id: str, version: int) -> bool:
        return self._memory.at(collection_id, version) is not None

    # ------------------------------------------------------------------ writes

    def add(self, collection: Collection, batch: RecordBatch) -> None:
        if not self._logged(collection, "add", batch):
            self._writes.add(collection, batch)

    def upsert(self, collection: Collection, batch: RecordBatch) -> None:
        if not self._logged(collection, "upsert", batch):
            self._writes.upsert(collection, batch)

    def update(self, collection: Collection, batch: RecordBatch) -> None:
        if not self._logged(collection, "update", batch):
            self._writes.update(collection, batch)

    def delete(self, collection: Collection, request: DeleteRequest) -> int:
        """A delete by ids alone is an entry of the log and counts the ids asked for, as
        Chroma's server does; one with a filter or a limit counts what it deleted, so it
        deletes from the table itself, after the log is folded."""
        doomed = request.filter
        if doomed.where is None and doomed.where_document is None and request.limit is None:
            ids = doomed.ids or []
            if ids and not self._logged(collection, "delete", RecordBatch(ids=ids)):
                self._writes.delete(collection, request)
            return len(ids)
        with self._exclusive(collection):
            return self._writes.delete(collection, request)

    def upsert_columns(self, collection: Collection, batch: ColumnBatch) -> None:
        with self._exclusive(collection):
            self._writes.upsert_columns(collection, batch)

    def _logged(self, collection: Collection, operation: Operation, batch: RecordBatch) -> bool:
        """Append the write to the log; ``False`` when this store has none."""
        if self._folder is None:
            return False
        self._folder.append(collection, Entry(operation, batch, time.time_ns()))
        return True

    def _exclusive(self, collection: Collection) -> contextlib.AbstractContextManager[Any]:
        return (
            contextlib.nullcontext() if self._folder is None else self._folder.exclusive(collection)
        )

    @contextlib.contextmanager
    def _current(
        self, collection: Collection, serves: Callable[[Tail], bool] = lambda _: True
    ) -> Iterator[Tail | None]:
        """Reads in the block see every write acknowledged before it: the version the log's
        mark names, pinned, and the log's tail over it, when the reads can answer around a
        tail that ``serves`` them; otherwise the tail is folded first (or, in a
        :meth:`pinned` block, the version pinned there is read)."""
        if self._folder is None or self._tables.pinned_here(collection.id):
            yield None
            return
        state = self._folder.state(collection)
        tail = None
        if 0 < state.tail <= FOLD_AT and state.version is not None and collection.dimension:
            with contextlib.suppress(LogTrimmedError):  # folded meanwhile: read what it left
                tail = self._tail(collection, state)
            if tail is not None and not serves(tail):
                tail = None
        if state.tail and tail is None:
            state = self._folder.fresh(collection)
        with self._tables.pinned():
            self._tables.pin(collection.id, state.version)
            yield tail

    def _tail(self, collection: Collection, state: LogState) -> Tail:
        assert self._folder is not None and state.version is not None
        assert collection.dimension is not None
        folder = self._folder
        opened = self._tables.at(collection.id, state.version)

        def stored(ids: list[str]) -> dict[str, dict[str, Any]]:
            if opened is None:
                return {}
            rows = self._reads.rows_of(
                opened[0], ids, ("embeddings", "documents", "uris", "metadatas")
            )
            return {row["id"]: row for row in arrow.records(rows)}

        return self._tails.of(
            collection.id,
            state,
            collection.dimension,
            lambda after, upto: folder.entries(collection, after, upto),
            stored,
        )

    # ------------------------------------------------------------------ reads

    def expect(self, collection_id: str) -> None:
        if self._folder is not None:
            self._folder.expect(collection_id)

    def count(self, collection: Collection) -> int:
        with self._current(collection) as tail:
            return self._reads.count(collection, tail)

    def get(self, collection: Collection, request: GetRequest) -> GetResult:
        with self._current(collection, lambda tail: tail.evaluates(request.filter)) as tail:
            return self._reads.get(collection, request, tail)

    def query(self, collection: Collection, request: QueryRequest) -> QueryResult:
        def serves(tail: Tail) -> bool:  # a query naming ids checks them against the version
            return request.filter.ids is None and tail.evaluates(request.filter)

        with self._current(collection, serves) as tail:
            return self._reads.query(collection, request, tail)

    def sparse_knn(
        self,
        collection: Collection,
        key: str,
        vector: SparseVector,
        limit: int,
        request_filter: Filter,
        bm25: bool,
    ) -> list[tuple[str, float]]:
        with self._current(collection, lambda _: False):
            return self._reads.sparse_knn(collection, key, vector, limit, request_filter, bm25)

    @contextlib.contextmanager
    def pinned(self, collection: Collection) -> Iterator[None]:
        with self._tables.pinned():
            if self._folder is not None:
                self._tables.pin(collection.id, self._folder.fresh(collection).version)
            yield

    # ------------------------------------------------------------------ versions and forks

    def fork(self, source: Collection, fork_id: str, version: int | None = None) -> int | None:
        if version is None and self._folder is not None:
            version = self._folder.fresh(source).version
        forked = self._history.fork(source.id, fork_id, version)
        if forked is None:
            return None
        dimension, version = forked
        self._sparse.files.inherit(source.id, fork_id, version)
        return dimension

    def unpin(self, source_id: str, fork_id: str) -> None:
        self._history.unpin(source_id, fork_id)

    def scan(
        self, collection: Collection, version: int | None = None, rows: int = SCAN_ROWS
    ) -> Iterator[ColumnBatch]:
        if version is None and self._folder is not None:
            version = self._folder.fresh(collection).version
        return self._history.scan(collection, version, rows)

    def restore_points(self, collection: Collection) -> list[RestorePoint]:
        if self._folder is not None:
            self._folder.fresh(collection)
        return self._history.restore_points(collection)

    def restore(self, collection: Collection, version: int) -> int:
        with self._exclusive(collection):
            return self._history.restore(collection, version)

    # ------------------------------------------------------------------ maintenance

    def index_status(self, collection: Collection) -> tuple[int, int]:
        if self._folder is not None:
            self._folder.fresh(collection)
        table = self._tables.open(collection.id)
        if table is None:
            return 0, 0
        indexed, unindexed = indexing.index_status(
            table, self._tables.described(table), self.policy
        )
        missed = self._sparse.unindexed(table, collection, self.policy)
        if missed > unindexed:
            return indexed + unindexed - missed, missed
        return indexed, unindexed

    def maintain(self, collection: Collection, growing: bool = False) -> dict[str, Any]:
        with self._exclusive(collection):
            return self._maintain(collection, growing)

    @retry_on_conflict
    def _maintain(self, collection: Collection, growing: bool) -> dict[str, Any]:
        table = self._tables.open(collection.id)
        if table is None:
            return {"rows": 0}
        aged = functools.partial(self._tables.aged, collection.id)
        report = indexing.maintain(table, collection, self.policy, growing, aged)
        if not report.get("deferred"):
            report.update(self._sparse.maintain(table, collection, self.policy))
        return report

    def drop(self, collection_id: str) -> bool:
        """Remove the collection's table (see :meth:`Tables.drop`)."""
        self._memory.discard(collection_id)
        self._sparse.forget(collection_id)
        self._tails.forget(collection_id)
        if self._log is not None:
            self._log.drop(collection_id)
        return self._tables.drop(collection_id)

    def reset(self) -> bool:
        """Remove every table; ``False`` if some files remain (see :meth:`drop`)."""
        self._memory.clear()
        self._sparse.forget()
        self._tails.forget()
        if self._log is not None:
            self._log.reset()
        return self._tables.drop_all()

    def collection_ids(self) -> list[str]:
        return self._tables.collection_ids()
