"""How a query searches one table version, decided once per request for all its vectors.

From memory (:class:`MemoryPlan`): the snapshot of the version, the rows the filter keeps,
and the effort (IVF partitions probed, graph candidates), or an exact scan. Through the engine
(:class:`EnginePlan`): the SQL predicate, applied before the search (prefilter), the ANN index
when the table has one (rows added since it was built are scanned too, so every acknowledged
write is found), and an exact search when the filter keeps few rows (its scalar index finds
them; ANN partitions might hold too few of them). Both scale their effort by Chroma's
``hnsw.ef_search`` through :func:`probes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chroma_serverless.records import arrow, layout
from chroma_serverless.records.engine import LANCE_DISTANCE, engine_errors
from chroma_serverless.records.memory.snapshot import Effort
from chroma_serverless.records.memory.tier import graph_breadth
from chroma_serverless.records.sql import to_sql

if TYPE_CHECKING:
    import pyarrow as pa

    from chroma_serverless.records.engine import Description
    from chroma_serverless.records.masks import Mask
    from chroma_serverless.records.memory.snapshot import Snapshot
    from chroma_serverless.types import Collection, IndexPolicy, QueryRequest, Vectors


def probes(minimum: int, partitions: int, percent: int, ef_search: int) -> int:
    """Partitions to probe: at least ``minimum`` and ``percent`` of the ``partitions``, scaled
    by Chroma's ``ef_search`` (100, its default, scales by one)."""
    base = max(minimum, math.ceil(partitions * percent / 100))
    return max(1, round(base * ef_search / 100))


@dataclass(frozen=True)
class MemoryPlan:
    snapshot: Snapshot
    mask: Mask  # the rows the request's filter keeps
    columns: list[str]
    effort: Effort | None  # None: exact
    exact_rows: int  # at most this many matching rows are searched exactly

    @classmethod
    def of(
        cls,
        snapshot: Snapshot,
        mask: Mask,
        collection: Collection,
        request: QueryRequest,
        policy: IndexPolicy,
    ) -> MemoryPlan:
        """The IVF scans ``policy.memory_probe_percent`` of the partitions (at least
        ``policy.nprobes``), the graph keeps ``ef_search`` candidates (more past 100k rows);
        a snapshot without partitions is searched exactly."""
        effort = None
        if snapshot.index is not None:
            ef = collection.ef_search
            probed = probes(
                policy.nprobes, snapshot.index.partitions, policy.memory_probe_percent, ef
            )
            effort = Effort(probed, graph_breadth(max(1, ef), snapshot.num_rows))
        columns = arrow.columns(snapshot.data.column_names, request.include)
        return cls(snapshot, mask, columns, effort, policy.threshold)

    def nearest(self, vector: Vectors, k: int, collection: Collection) -> pa.Table:
        return self.snapshot.nearest(
            vector, k, self.mask, collection.space, self.columns, self.effort, self.exact_rows
        )


@dataclass(frozen=True)
class EnginePlan:
    table: Any
    predicate: str | None
    columns: list[str]
    exact: bool
    probes: int
    refine_factor: int
    matching: int | None  # rows the filter keeps (counted only when it decides the plan)

    @classmethod
    def of(
        cls,
        table: Any,
        described: Description,
        collection: Collection,
        request: QueryRequest,
        policy: IndexPolicy,
    ) -> EnginePlan:
        predicate = to_sql(request.filter, described.names)
        columns = [*arrow.columns(described.names, request.include), layout.DISTANCE]
        index = described.vector_index
        partitions = 0
        if index is not None:
            partitions = max(1, int(index.num_indexed_rows or 0) // policy.rows_per_partition)
        probed = probes(policy.nprobes, partitions, policy.probe_percent, collection.ef_search)
        exact, matching = index is None, None
        if index is not None and predicate is not None:
            with engine_errors():
                matching = int(table.count_rows(predicate))
            exact = matching <= policy.exact_filter_rows
        return cls(table, predicate, columns, exact, probed, policy.refine_factor, matching)

    def nearest(self, vector: Vectors, k: int, collection: Collection) -> pa.Table:
        """An ANN answer shorter than ``k`` is checked against the number of matching rows,
        so a filtered query never returns fewer results than exist."""
        found = self._search(vector, k, collection, self.exact)
        if not self.exact and self.matching is not None and found.num_rows < min(k, self.matching):
            found = self._search(vector, k, collection, exact=True)
        return found

    def _search(self, vector: Vectors, k: int, collection: Collection, exact: bool) -> pa.Table:
        query = (
            self.table.search(vector, vector_column_name=layout.EMBEDDING)
            .distance_type(LANCE_DISTANCE[collection.space])
            .limit(k)
            .select(self.columns)
        )
        if exact:
            query = query.bypass_vector_index()
        else:
            query = query.nprobes(self.probes).refine_factor(self.refine_factor)
        if self.predicate is not None:
            query = query.where(self.predicate, prefilter=True)
        with engine_errors():
            result: pa.Table = query.to_arrow()
        return result
