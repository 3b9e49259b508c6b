"""An independent, pure-Python model of the Search API over records read back from a collection.

Written from Chroma's semantics (its ``RankDomain`` evaluation, ``SparseIndexKnn``,
``Idf`` and ``RankedGroupBy`` operators), never by calling :mod:`chroma_serverless.search.ranking`:

- a ``$knn`` lists the ``limit`` records nearest to its query among those the filter selects,
  ascending, ties in insertion order: dense by the collection's distance, sparse by
  ``1 - q·d`` over the records sharing a term with the query (with ``bm25``, each query weight
  times ``ln((N - n_t + 0.5) / (n_t + 0.5) + 1)`` over every record of the collection);
- a record scores its distance (or its 0-based place with ``return_rank``) in each knn; missing
  from a knn it takes the knn's ``default``, or without one it drops out;
- results sort by score, ties in insertion order; ``group_by`` keeps the ``k`` first of each
  group by its aggregate keys (a missing value first); then offset and limit apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.support.oracle import Record, matches

if TYPE_CHECKING:
    from collections.abc import Callable

    from chromadb.base_types import SparseVector

Scored = list[tuple[str, float]]


@dataclass(frozen=True)
class Stored:
    id: str
    embedding: list[float]
    document: str | None
    metadata: dict[str, Any] | None


@dataclass
class Domain:
    support: dict[str, float]
    default: float | None


class SearchOracle:
    def __init__(
        self, records: list[Stored], space: str = "l2", bm25_keys: frozenset[str] = frozenset()
    ) -> None:
        self.records = records  # in insertion order
        self.space = space
        self.bm25_keys = bm25_keys
        self.order = {r.id: i for i, r in enumerate(records)}

    @classmethod
    def of(
        cls, collection: Any, space: str = "l2", bm25_keys: frozenset[str] = frozenset()
    ) -> SearchOracle:
        got = collection.get(include=["embeddings", "documents", "metadatas"])
        records = [
            Stored(i, [float(x) for x in e], d, m)
            for i, e, d, m in zip(
                got["ids"], got["embeddings"], got["documents"], got["metadatas"], strict=True
            )
        ]
        return cls(records, space, bm25_keys)

    def search(self, payload: dict[str, Any]) -> Scored:
        """``(id, score)`` of a search (``Search.to_dict()``); score ``nan`` without a rank."""
        where = payload.get("filter") or None
        selected = [r for r in self.records if matches(Record(r.id, r.metadata, r.document), where)]
        limit = payload.get("limit") or {}
        offset, count = limit.get("offset", 0), limit.get("limit")
        if payload.get("rank") is None:
            page = selected[offset:] if count is None else selected[offset : offset + count]
            return [(r.id, math.nan) for r in page]
        domain = self._rank(payload["rank"], selected)
        ranked = sorted(domain.support.items(), key=lambda item: (item[1], self.order[item[0]]))
        group_by = payload.get("group_by") or {}
        if group_by:
            ranked = self._group(ranked, group_by)
        return ranked[offset:] if count is None else ranked[offset : offset + count]

    # ------------------------------------------------------------------ ranking

    def _rank(self, node: dict[str, Any], selected: list[Stored]) -> Domain:
        ((operator, operand),) = node.items()
        if operator == "$knn":
            found = self._knn(operand, selected)
            support = {
                record_id: float(place) if operand.get("return_rank") else distance
                for place, (record_id, distance) in enumerate(found)
            }
            return Domain(support, operand.get("default"))
        if operator == "$val":
            return Domain({}, float(operand))
        if operator in ("$abs", "$exp", "$log"):
            functions: dict[str, Callable[[float], float]] = {
                "$abs": abs,
                "$exp": math.exp,
                "$log": math.log,
            }
            unary = functions[operator]
            inner = self._rank(operand, selected)
            default = None if inner.default is None else unary(inner.default)
            return Domain({k: unary(v) for k, v in inner.support.items()}, default)
        if operator in ("$sub", "$div"):
            function = (lambda a, b: a - b) if operator == "$sub" else (lambda a, b: a / b)
            left = self._rank(operand["left"], selected)
            return _merge(left, self._rank(operand["right"], selected), function)
        start, combine = {
            "$sum": (0.0, lambda a, b: a + b),
            "$mul": (1.0, lambda a, b: a * b),
            "$max": (-math.inf, max),
            "$min": (math.inf, min),
        }[operator]
        domain = Domain({}, start)
        for child in operand:
            domain = _merge(domain, self._rank(child, selected), combine)
        return domain

    def _knn(self, knn: dict[str, Any], selected: list[Stored]) -> Scored:
        query = knn["query"]
        if isinstance(query, dict):  # sparse
            key = knn["key"]
            weights = dict(zip(query["indices"], query["values"], strict=True))
            if key in self.bm25_keys:
                weights = self._idf(key, weights)
            found = []
            for record in selected:
                vector = (record.metadata or {}).get(key)
                if vector is None or not set(vector.indices) & set(weights):
                    continue
                dot = sum(weights.get(t, 0.0) * v for t, v in _pairs(vector))
                found.append((record.id, 1.0 - dot))
        else:
            found = [(r.id, self._distance(query, r.embedding)) for r in selected]
        found.sort(key=lambda item: (item[1], self.order[item[0]]))
        return found[: knn.get("limit", 16)]

    def _idf(self, key: str, weights: dict[int, float]) -> dict[int, float]:
        total = len(self.records)
        scaled = {}
        for term, weight in weights.items():
            holding = sum(
                1
                for r in self.records
                if (vector := (r.metadata or {}).get(key)) is not None and term in vector.indices
            )
            scaled[term] = weight * math.log((total - holding + 0.5) / (holding + 0.5) + 1)
        return scaled

    def _distance(self, query: list[float], vector: list[float]) -> float:
        dot = sum(a * b for a, b in zip(query, vector, strict=True))
        if self.space == "ip":
            return 1.0 - dot
        if self.space == "cosine":
            norms = math.sqrt(sum(a * a for a in query)) * math.sqrt(sum(b * b for b in vector))
            return 1.0 - dot / norms
        return sum((a - b) ** 2 for a, b in zip(query, vector, strict=True))

    # ------------------------------------------------------------------ grouping

    def _group(self, ranked: Scored, group_by: dict[str, Any]) -> Scored:
        ((aggregate, spec),) = group_by["aggregate"].items()
        metadata = {r.id: r.metadata or {} for r in self.records}
        groups: dict[tuple[Any, ...], Scored] = {}
        for record_id, score in ranked:
            identity = tuple(_identity(metadata[record_id].get(key)) for key in group_by["keys"])
            groups.setdefault(identity, []).append((record_id, score))
        kept: Scored = []
        for members in groups.values():

            def order(item: tuple[str, float]) -> tuple[Any, ...]:
                return tuple(
                    (1, item[1]) if key == "#score" else _sortable(metadata[item[0]].get(key))
                    for key in spec["keys"]
                )

            members.sort(key=order, reverse=aggregate == "$max_k")
            kept.extend(members[: spec["k"]])
        return sorted(kept, key=lambda item: (item[1], self.order[item[0]]))


def _merge(left: Domain, right: Domain, function: Any) -> Domain:
    if left.default is not None and right.default is not None:
        ids = left.support.keys() | right.support.keys()
        support = {
            i: function(left.support.get(i, left.default), right.support.get(i, right.default))
            for i in ids
        }
        return Domain(support, function(left.default, right.default))
    if left.default is not None:
        support = {
            i: function(left.support.get(i, left.default), v) for i, v in right.support.items()
        }
        return Domain(support, None)
    if right.default is not None:
        support = {
            i: function(v, right.support.get(i, right.default)) for i, v in left.support.items()
        }
        return Domain(support, None)
    both = left.support.keys() & right.support.keys()
    return Domain({i: function(left.support[i], right.support[i]) for i in both}, None)


def _pairs(vector: SparseVector) -> list[tuple[int, float]]:
    return list(zip(vector.indices, vector.values, strict=True))


def _identity(value: object) -> tuple[Any, ...]:
    return (type(value).__name__, tuple(value) if isinstance(value, list) else value)


def _sortable(value: object) -> tuple[Any, ...]:
    """A missing value first, then numbers by value, then strings."""
    if value is None:
        return (0,)
    if isinstance(value, str):
        return (3, value)
    return (1, float(value))  # type: ignore[arg-type]
