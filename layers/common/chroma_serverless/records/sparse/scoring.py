"""Scoring sparse queries exactly: ``1 - q·d`` over the rows sharing a term with the query,
from an inverted index's postings or a scan of rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chroma_serverless.records import layout

if TYPE_CHECKING:
    from chroma_serverless.records.masks import Mask
    from chroma_serverless.types import SparseVector

Hits = list[tuple[str, float]]


@dataclass(frozen=True)
class Query:
    """A sparse query: its terms (ascending) and their weights."""

    terms: np.ndarray[Any, np.dtype[np.uint32]]
    weights: np.ndarray[Any, np.dtype[np.float64]]

    @classmethod
    def of(cls, vector: SparseVector) -> Query:
        return cls(np.asarray(vector.indices, np.uint32), np.asarray(vector.values, np.float64))

    def scaled(self, rows: int, frequencies: np.ndarray[Any, Any]) -> Query:
        """BM25: each weight times its term's IDF among ``rows`` rows."""
        idf = np.log1p((rows - frequencies + 0.5) / (frequencies + 0.5))
        return Query(self.terms, self.weights * idf)


class Rows:
    """Some rows' sparse vectors under one key, flattened: for each entry its row, term and
    weight (rows without a vector have no entries)."""

    def __init__(self, data: pa.Table, column: str) -> None:
        self.ids: pa.Array = data.column(layout.ID).combine_chunks()
        self.seqs = data.column(layout.SEQ).to_numpy()
        self.size = data.num_rows
        if column not in data.column_names or self.size == 0:
            self.rows = np.zeros(0, np.int64)
            self.terms = np.zeros(0, np.uint32)
            self.values = np.zeros(0, np.float32)
            return
        vectors = data.column(column).combine_chunks()
        indices = pc.struct_field(vectors, "indices")
        self.rows = np.asarray(pc.list_parent_indices(indices))
        self.terms = np.asarray(pc.list_flatten(indices))
        self.values = np.asarray(pc.list_flatten(pc.struct_field(vectors, "values")))

    def matches(self, query: Query) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(row, position of the term in the query) of each entry on a query term."""
        on = np.isin(self.terms, query.terms)
        return np.flatnonzero(on), np.searchsorted(query.terms, self.terms[on])

    def frequencies(self, query: Query, live: Mask | None = None) -> np.ndarray[Any, Any]:
        """How many (``live``) rows hold each query term."""
        entries, slots = self.matches(query)
        if live is not None:
            slots = slots[live[self.rows[entries]]]
        return np.bincount(slots, minlength=len(query.terms))

    def nearest(self, query: Query, allowed: np.ndarray[Any, Any] | None) -> Candidates:
        entries, slots = self.matches(query)
        rows = self.rows[entries]
        contributions = query.weights[slots] * self.values[entries]
        return Candidates.scored(rows, contributions, self.size, allowed, self.ids, self.seqs)


@dataclass(frozen=True)
class Candidates:
    """Scored rows: positions in ``ids``/``seqs`` and their distances."""

    ids: pa.Array
    seqs: np.ndarray[Any, Any]
    rows: np.ndarray[Any, Any]
    distances: np.ndarray[Any, Any]

    @classmethod
    def scored(
        cls,
        rows: np.ndarray[Any, Any],
        contributions: np.ndarray[Any, Any],
        size: int,
        allowed: np.ndarray[Any, Any] | None,
        ids: pa.Array,
        seqs: np.ndarray[Any, Any],
    ) -> Candidates:
        """Rows with at least one contribution (and ``allowed``), at ``1 - Σ contributions``."""
        dots = np.bincount(rows, weights=contributions, minlength=size)
        touched = np.bincount(rows, minlength=size) > 0
        if allowed is not None:
            touched &= allowed
        chosen = np.flatnonzero(touched)
        return cls(ids, seqs, chosen, 1.0 - dots[chosen])


def top(candidates: list[Candidates], limit: int) -> Hits:
    """The ``limit`` nearest, ascending by distance, ties in insertion order."""
    distances = np.concatenate([c.distances for c in candidates])
    if len(distances) > limit:  # keep the limit nearest and every row tied with the last
        bound = np.partition(distances, limit - 1)[limit - 1]
        near = np.flatnonzero(distances <= bound)
    else:
        near = np.arange(len(distances))
    seqs = np.concatenate([c.seqs[c.rows] for c in candidates])
    order = near[np.lexsort((seqs[near], distances[near]))][:limit]
    starts = np.cumsum([0, *(len(c.rows) for c in candidates)])
    hits = []
    for i in order:
        which = int(np.searchsorted(starts, i, side="right")) - 1
        source = candidates[which]
        hits.append((source.ids[int(source.rows[i - starts[which]])].as_py(), float(distances[i])))
    return hits


def scan(
    data: pa.Table,
    column: str,
    vector: SparseVector,
    limit: int,
    allowed: Mask | None,
    bm25: bool,
    live: Mask | None = None,
) -> Hits:
    """Nearest rows of ``data``, which holds every row of the table (and, where ``live`` is
    false, rows no longer current); ``allowed`` a mask or ``None``."""
    rows = Rows(data, column)
    query = Query.of(vector)
    if bm25:
        count = rows.size if live is None else int(live.sum())
        query = query.scaled(count, rows.frequencies(query, live))
    if live is not None:
        allowed = live if allowed is None else allowed & live
    return top([rows.nearest(query, allowed)], limit)


# ---------------------------------------------------------------------------- the index
