"""The Search API: each search filters, ranks (knn, sparse knn, arithmetic), groups, pages
and selects, over the record store.

Dense knn runs through the store's ``query`` (the same plan as Chroma's ``query``: the vector
index past the threshold, exact below it, unindexed rows scanned), sparse knn through
``sparse_knn``. Their candidate lists are combined by :mod:`chroma_serverless.ranking`; ties
in the final score go to the record inserted first, as Chroma orders by its offset ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless import checks, collection_schema, grouping, ranking
from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.filters import DOCUMENT_KEY, ID_KEY, LOGICAL, validate_where
from chroma_serverless.types import Filter, GetRequest, QueryRequest, SparseVector

if TYPE_CHECKING:
    from chroma_serverless.records import RecordStore
    from chroma_serverless.types import (
        Collection,
        GetResult,
        Include,
        Metadata,
        Vectors,
        Where,
    )

EMBEDDING_KEY = "#embedding"
METADATA_KEY = "#metadata"
SCORE_KEY = "#score"
SPECIAL_KEYS = (DOCUMENT_KEY, EMBEDDING_KEY, METADATA_KEY, SCORE_KEY, ID_KEY)
FIELDS = ("filter", "rank", "group_by", "limit", "select")


@dataclass(frozen=True)
class Select:
    keys: tuple[str, ...]  # as sent, without repeats

    @property
    def fields(self) -> frozenset[str]:
        """The metadata keys selected one by one."""
        return frozenset(k for k in self.keys if k not in SPECIAL_KEYS)

    @property
    def include(self) -> tuple[Include, ...]:
        """What the store must read for the selected keys."""
        include: list[Include] = []
        if DOCUMENT_KEY in self.keys:
            include.append("documents")
        if EMBEDDING_KEY in self.keys:
            include.append("embeddings")
        if METADATA_KEY in self.keys or self.fields:
            include.append("metadatas")
        return tuple(include)

    def metadata(self, metadata: Metadata | None) -> Metadata | None:
        """The selected part of a record's metadata (``None`` when it has none of it)."""
        if metadata is None or METADATA_KEY in self.keys:
            return metadata
        kept = {k: v for k, v in metadata.items() if k in self.fields}
        return kept or None


@dataclass(frozen=True)
class Search:
    filter: Filter = field(default_factory=Filter)
    rank: ranking.Rank | None = None
    group_by: grouping.GroupBy | None = None
    offset: int = 0
    limit: int | None = None
    select: Select = field(default_factory=lambda: Select(()))


@dataclass
class Found:
    """One search's records, in order, with the selected columns (``None``: not selected)."""

    select: tuple[str, ...]
    ids: list[str]
    documents: list[str | None] | None = None
    embeddings: list[Vectors] | None = None
    metadatas: list[Metadata | None] | None = None
    scores: list[float | None] | None = None


# ---------------------------------------------------------------------------- parsing


def parse(raw: object, index: int) -> Search:
    path = f"searches[{index}]"
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"{path}: expected an object, got {raw!r}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise InvalidArgumentError(
            f"{path}: unknown field {unknown[0]!r}; expected {', '.join(FIELDS)}"
        )
    where = raw.get("filter")
    if where is not None and where != {}:
        validate_where(where)
    rank = None if raw.get("rank") is None else ranking.parse(raw["rank"], f"{path}.rank")
    if rank is not None and not ranking.knns(rank):
        raise InvalidArgumentError(
            f"{path}.rank: expected at least one $knn; a rank of constants scores no record"
        )
    group_by = grouping.parse(raw.get("group_by"), f"{path}.group_by")
    if group_by is not None and rank is None:
        raise InvalidArgumentError(f"{path}.group_by: grouping needs a rank expression")
    offset, limit = _limit(raw.get("limit"), f"{path}.limit")
    return Search(Filter(where=where or None), rank, group_by, offset, limit, _select(raw, path))


def _limit(raw: object, path: str) -> tuple[int, int | None]:
    if raw is None:
        return 0, None
    if not isinstance(raw, dict) or set(raw) - {"offset", "limit"}:
        raise InvalidArgumentError(
            f"{path}: expected an object with 'offset' and optionally 'limit', got {raw!r}"
        )
    offset, limit = raw.get("offset", 0), raw.get("limit")
    for name, value in (("offset", offset), ("limit", limit)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidArgumentError(f"{path}.{name}: expected an integer, got {value!r}")
    checks.count(offset, f"{path}.offset")
    checks.count(limit, f"{path}.limit")
    return offset, limit


def _select(raw: dict[str, Any], path: str) -> Select:
    select = raw.get("select")
    if select is None:
        return Select(())
    keys = select.get("keys", []) if isinstance(select, dict) else None
    if (
        not isinstance(select, dict)
        or set(select) - {"keys"}
        or not isinstance(keys, list)
        or not all(isinstance(k, str) for k in keys)
    ):
        raise InvalidArgumentError(
            f"{path}.select: expected an object with a list of keys, got {select!r}"
        )
    for key in keys:
        if key.startswith("#") and key not in SPECIAL_KEYS:
            raise InvalidArgumentError(
                f"{path}.select: unknown key {key!r}; expected a metadata key or one of "
                f"{', '.join(SPECIAL_KEYS)}"
            )
    return Select(tuple(dict.fromkeys(keys)))


# ---------------------------------------------------------------------------- checks


def check(search: Search, collection: Collection) -> None:
    """What the collection's schema and dimension allow: filters on indexed keys only,
    sparse knn on a sparse-indexed key, dense knn on ``#embedding`` in its dimension."""
    schema = collection.schema
    if search.filter.where is not None:
        _check_filter(search.filter.where, schema)
    for knn in ranking.knns(search.rank) if search.rank is not None else []:
        if knn.sparse:
            collection_schema.check_indexed(schema, knn.key, "SparseVector")
            continue
        if knn.key != EMBEDDING_KEY:
            raise InvalidArgumentError(
                f"Dense $knn searches {EMBEDDING_KEY}, got key {knn.key!r}; a key of "
                "sparse vectors needs a sparse query"
            )
        assert isinstance(knn.query, np.ndarray)
        if collection.dimension is not None and collection.dimension != len(knn.query):
            raise InvalidArgumentError(
                f"Collection expecting embedding with dimension of {collection.dimension}, "
                f"got {len(knn.query)}"
            )


VALUE_TYPES = {bool: "Bool", int: "Int", float: "Float", str: "Str"}


def _check_filter(where: Where, schema: dict[str, Any] | None) -> None:
    ((key, value),) = where.items()
    if key in LOGICAL:
        for child in value:
            _check_filter(child, schema)
    elif key == DOCUMENT_KEY:
        if not collection_schema.full_text_search_enabled(schema):
            raise InvalidArgumentError(
                "Cannot filter using full-text search because FTS indexing is disabled"
            )
    elif key != ID_KEY:
        operand = next(iter(value.values())) if isinstance(value, dict) else value
        sample = operand[0] if isinstance(operand, list) else operand
        collection_schema.check_indexed(schema, key, VALUE_TYPES[type(sample)])


# ---------------------------------------------------------------------------- running


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
        bm25 = collection_schema.sparse_indexes(collection.schema).get(knn.key, False)
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
    for name in ("ids", "documents", "embeddings", "metadatas"):
        column = getattr(fetched, name)
        if column is not None:
            setattr(fetched, name, [column[i] for i in order])
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
