"""Running searches over the record store: each filters, ranks (knn, sparse knn, arithmetic),
groups, pages and selects.

Dense knn runs through the store's ``query`` (the same plan as Chroma's ``query``: the vector
index past the threshold, exact below it, unindexed rows scanned), sparse knn through
``sparse_knn``. Their candidate lists are combined by :mod:`chroma_serverless.search.ranking`;
ties in the final score go to the record inserted first, as Chroma orders by its offset ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.domain.filters import DOCUMENT_KEY
from chroma_serverless.domain.schema import indexes
from chroma_serverless.search import grouping, ranking
from chroma_serverless.search.model import EMBEDDING_KEY, METADATA_KEY, SCORE_KEY, Found
from chroma_serverless.types import Filter, GetRequest, QueryRequest, SparseVector

if TYPE_CHECKING:
    from chroma_serverless.ports import RecordStore
    from chroma_serverless.search.model import Search
    from chroma_serverless.types import Collection, GetResult


def run(records: RecordStore, collection: Collection, search: Search) -> Found:
    include = search.select.include
    if search.rank is None:  # storage order, as get
        request = GetRequest(search.filter, search.limit, search.offset, include)
        stored = records.get(collection, request)
        return _found(search, stored.ids, stored, [None] * len(stored.ids))
    results = [_knn(records, collection, knn, search.filter) for knn in ranking.knns(search.rank)]
    scores = ranking.evaluate(search.rank, results)
    if not scores:
        return _found(search, [], None, [])
    grouped = search.group_by is not None
    ordered = records.get(
        collection,
        GetRequest(Filter(ids=list(scores)), include=("metadatas",) if grouped else ()),
    )
    ranked = sorted(
        (
            grouping.Ranked(record_id, scores[record_id], i, metadata)
            for i, (record_id, metadata) in enumerate(
                zip(ordered.ids, ordered.metadatas or [None] * len(ordered.ids), strict=True)
            )
        ),
        key=lambda r: grouping.ranked_order(r.score, r.position),
    )
    if search.group_by is not None:
        ranked = grouping.apply(search.group_by, ranked)
    end = None if search.limit is None else search.offset + search.limit
    ranked = ranked[search.offset : end]
    ids = [r.id for r in ranked]
    page: GetResult | None = None
    if include and ids:
        fetched = records.get(collection, GetRequest(Filter(ids=ids), include=include))
        page = _in_order(fetched, ids)
    return _found(search, ids, page, [r.score for r in ranked])


def _knn(
    records: RecordStore, collection: Collection, knn: ranking.Knn, request_filter: Filter
) -> list[tuple[str, float]]:
    if isinstance(knn.query, SparseVector):
        bm25 = indexes.sparse_indexes(collection.schema).get(knn.key, False)
        return records.sparse_knn(collection, knn.key, knn.query, knn.limit, request_filter, bm25)
    if collection.dimension is None:  # nothing written yet
        return []
    vectors = np.asarray(knn.query, dtype=np.float32)[np.newaxis, :]
    found = records.query(
        collection, QueryRequest(vectors, knn.limit, request_filter, ("distances",))
    )
    assert found.distances is not None
    return list(zip(found.ids[0], found.distances[0], strict=True))


def _in_order(fetched: GetResult, ids: list[str]) -> GetResult:
    """``fetched`` (a get's result, in storage order) rearranged into the order of ``ids``."""
    where = {record_id: i for i, record_id in enumerate(fetched.ids)}
    order = [where[i] for i in ids if i in where]
    for name in ("ids", "documents", "metadatas"):
        column = getattr(fetched, name)
        if column is not None:
            setattr(fetched, name, [column[i] for i in order])
    if fetched.embeddings is not None:
        fetched.embeddings = fetched.embeddings[np.asarray(order, dtype=np.int64)]
    return fetched


def _found(
    search: Search, ids: list[str], page: GetResult | None, scores: list[float | None]
) -> Found:
    keys = search.select.keys
    if page is not None and page.ids != ids:  # records deleted meanwhile
        kept = set(page.ids)
        scores = [s for i, s in zip(ids, scores, strict=True) if i in kept]
        ids = page.ids

    def column(name: str) -> list[Any] | None:
        return [None] * len(ids) if page is None else getattr(page, name)

    found = Found(keys, ids)
    if DOCUMENT_KEY in keys:
        found.documents = column("documents")
    if EMBEDDING_KEY in keys:
        found.embeddings = column("embeddings")
    if METADATA_KEY in keys or search.select.fields:
        metadatas = column("metadatas") or []
        found.metadatas = [search.select.metadata(m) for m in metadatas]
    if SCORE_KEY in keys:
        found.scores = scores
    return found
