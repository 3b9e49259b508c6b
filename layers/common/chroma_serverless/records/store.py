"""The record store: :class:`~chroma_serverless.ports.RecordStore` on LanceDB, one table per
collection under a root URI (a local directory or ``s3://``).

It composes the parts of this package: ``tables`` (handles and the version check), ``writes``,
``reads`` (the in-memory tier, ``memory/``, or the engine, as ``plan`` chooses), ``history``
(forks, versions, restore, scans), ``indexing`` and ``sparse/`` (maintenance), ``arrow`` and
``layout`` (records as columns), ``engine`` (what they share about LanceDB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chroma_serverless.ports import SCAN_ROWS
from chroma_serverless.records import indexing
from chroma_serverless.records.engine import retry_on_conflict
from chroma_serverless.records.history import History
from chroma_serverless.records.memory.tier import MemoryTier
from chroma_serverless.records.reads import Reads
from chroma_serverless.records.sparse.files import IndexFiles
from chroma_serverless.records.sparse.indexes import SparseIndexes
from chroma_serverless.records.tables import Tables
from chroma_serverless.records.writes import Writes
from chroma_serverless.types import IndexPolicy

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from contextlib import AbstractContextManager

    from chroma_serverless.domain.columns import ColumnBatch
    from chroma_serverless.types import (
        Collection,
        DeleteRequest,
        Filter,
        GetRequest,
        GetResult,
        QueryRequest,
        QueryResult,
        RecordBatch,
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
    ) -> None:
        self.policy = policy or IndexPolicy()
        options = dict(storage_options or {})
        self._tables = Tables(uri, options, self.policy.retention_seconds, self._held_in_memory)
        self._memory = MemoryTier(self._tables.db, self.policy)
        self._sparse = SparseIndexes(IndexFiles(uri, options), self.policy.memory_mb * 2**20)
        self._reads = Reads(self._tables, self._memory, self._sparse, self.policy)
        self._writes = Writes(self._tables, self._memory, self._reads)
        self._history = History(self._tables)

    def _held_in_memory(self, collection_id: str, version: int) -> bool:
        return self._memory.at(collection_id, version) is not None

    # ------------------------------------------------------------------ writes

    def add(self, collection: Collection, batch: RecordBatch) -> None:
        self._writes.add(collection, batch)

    def upsert(self, collection: Collection, batch: RecordBatch) -> None:
        self._writes.upsert(collection, batch)

    def update(self, collection: Collection, batch: RecordBatch) -> None:
        self._writes.update(collection, batch)

    def delete(self, collection: Collection, request: DeleteRequest) -> int:
        return self._writes.delete(collection, request)

    def upsert_columns(self, collection: Collection, batch: ColumnBatch) -> None:
        self._writes.upsert_columns(collection, batch)

    # ------------------------------------------------------------------ reads

    def count(self, collection: Collection) -> int:
        return self._reads.count(collection)

    def get(self, collection: Collection, request: GetRequest) -> GetResult:
        return self._reads.get(collection, request)

    def query(self, collection: Collection, request: QueryRequest) -> QueryResult:
        return self._reads.query(collection, request)

    def sparse_knn(
        self,
        collection: Collection,
        key: str,
        vector: SparseVector,
        limit: int,
        request_filter: Filter,
        bm25: bool,
    ) -> list[tuple[str, float]]:
        return self._reads.sparse_knn(collection, key, vector, limit, request_filter, bm25)

    def pinned(self, collection: Collection) -> AbstractContextManager[None]:
        return self._tables.pinned()

    # ------------------------------------------------------------------ versions and forks

    def fork(self, source_id: str, fork_id: str, version: int | None = None) -> int | None:
        return self._history.fork(source_id, fork_id, version)

    def unpin(self, source_id: str, fork_id: str) -> None:
        self._history.unpin(source_id, fork_id)

    def scan(
        self, collection: Collection, version: int | None = None, rows: int = SCAN_ROWS
    ) -> Iterator[ColumnBatch]:
        return self._history.scan(collection, version, rows)

    def restore_points(self, collection: Collection) -> list[RestorePoint]:
        return self._history.restore_points(collection)

    def restore(self, collection: Collection, version: int) -> int:
        return self._history.restore(collection, version)

    # ------------------------------------------------------------------ maintenance

    def index_status(self, collection: Collection) -> tuple[int, int]:
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

    @retry_on_conflict
    def maintain(self, collection: Collection, growing: bool = False) -> dict[str, Any]:
        table = self._tables.open(collection.id)
        if table is None:
            return {"rows": 0}
        report = indexing.maintain(table, collection, self.policy, growing)
        if not report.get("deferred"):
            report.update(self._sparse.maintain(table, collection, self.policy))
        return report

    def drop(self, collection_id: str) -> bool:
        """Remove the collection's table (see :meth:`Tables.drop`)."""
        self._memory.discard(collection_id)
        self._sparse.forget(collection_id)
        return self._tables.drop(collection_id)

    def reset(self) -> bool:
        """Remove every table; ``False`` if some files remain (see :meth:`drop`)."""
        self._memory.clear()
        self._sparse.forget()
        return self._tables.drop_all()

    def collection_ids(self) -> list[str]:
        return self._tables.collection_ids()
