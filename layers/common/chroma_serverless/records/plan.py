"""Nearest neighbours through the engine: the ANN index when the table has one (rows added
since it was built are scanned too, so every acknowledged write is found), exact otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chroma_serverless.records import arrow, layout
from chroma_serverless.records.engine import LANCE_DISTANCE, engine_errors
from chroma_serverless.records.sql import to_sql

if TYPE_CHECKING:
    from chroma_serverless.records.engine import Description
    from chroma_serverless.types import Collection, IndexPolicy, QueryRequest, Vectors


def nearest(
    table: Any,
    described: Description,
    policy: IndexPolicy,
    collection: Collection,
    vector: Vectors,
    request: QueryRequest,
) -> list[dict[str, Any]]:
    """Nearest records to ``vector`` among those the request's filter matches.

    A filter is applied before the search (prefilter). One matching few rows is searched
    exactly (its scalar index finds the rows; ANN partitions might hold too few of them),
    and an ANN answer shorter than ``n_results`` is checked against the number of matching
    rows, so a filtered query never returns fewer results than exist.
    """
    predicate = to_sql(request.filter, described.names)

    def search(exact: bool) -> list[dict[str, Any]]:
        query = (
            table.search(vector, vector_column_name=layout.EMBEDDING)
            .distance_type(LANCE_DISTANCE[collection.space])
            .limit(request.n_results)
            .select([*arrow.columns(described.names, request.include), layout.DISTANCE])
        )
        if exact:
            query = query.bypass_vector_index()
        else:
            query = query.nprobes(nprobes(policy, collection, described)).refine_factor(
                policy.refine_factor
            )
        if predicate is not None:
            query = query.where(predicate, prefilter=True)
        with engine_errors():
            return arrow.records(query.to_arrow())

    if described.vector_index is None:
        return search(exact=True)
    if predicate is None:
        return search(exact=False)
    with engine_errors():
        matching = int(table.count_rows(predicate))
    exact = matching <= policy.exact_filter_rows
    records = search(exact)
    if not exact and len(records) < min(request.n_results, matching):
        records = search(exact=True)
    return records


def nprobes(policy: IndexPolicy, collection: Collection, described: Description | None) -> int:
    """Partitions to probe: at least ``policy.nprobes`` and ``policy.probe_percent`` of the
    index's partitions, scaled by Chroma's ``ef_search`` (default 100)."""
    hnsw = collection.configuration.get("hnsw") or {}
    ef_search = hnsw.get("ef_search", 100) if isinstance(hnsw, dict) else 100
    base = policy.nprobes
    index = None if described is None else described.vector_index
    if index is not None:
        partitions = max(1, int(index.num_indexed_rows or 0) // policy.rows_per_partition)
        base = max(base, -(-partitions * policy.probe_percent // 100))
    return max(1, round(base * float(ef_search) / 100))
