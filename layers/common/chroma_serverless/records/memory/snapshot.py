"""Collections served from memory: one table version held as Arrow and numpy.

The engine's fixed cost per query (planning, a scan per fragment; requests on S3) dominates a
small table and grows with every small write until compaction; for a large one an in-memory
partitioned scan is an order of magnitude faster than the engine's index. A version never
changes, so a snapshot read once per version answers ``get`` and ``query`` with array
operations: filters through :mod:`chroma_serverless.records.masks`, nearest neighbours through
matrix products, exactly or, for a large table, over the nearest partitions of an :mod:`ivf`.

Rows keep their positions for the life of a snapshot: this process's own writes advance it to
the next version by appending the rows they wrote and marking the rows they replaced or deleted
dead, so the partitioning stays valid and a write costs no copy of the table. Snapshots live in
a cache bounded in bytes (``cache.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chroma_serverless.records import layout
from chroma_serverless.records.memory import hnsw, ivf

if TYPE_CHECKING:
    from chroma_serverless.records.masks import Mask
    from chroma_serverless.types import Space, Vectors

Positions = np.ndarray[Any, np.dtype[np.int64]]
RERANK_FACTOR = 20  # a partitioned search re-ranks this many candidates per result exactly
RERANK_MIN = 200  # ... and at least this many
# ... and every candidate within this many standard errors of the approximation of the k-th
# (1M × 384 clustered, a filter on the top decile along a fixed direction: recall@10 0.692 with
# the 632 best approximately; 0.950 at 1.0, re-ranking 7,255 on average; 0.993 at 1.5, 24,888;
# at 1.25 through the server, bench/compare.py: 0.983, p50 62 ms)
CONFIDENCE = 1.25
GRAPH_MIN_SHARE = 0.5  # the graph answers when a filter keeps at least this share of the rows


@dataclass(frozen=True)
class Effort:
    """How hard an approximate search looks: the IVF partitions it probes, and the candidates
    the graph keeps while it searches (Chroma's ``ef_search``)."""

    probes: int
    ef: int


class Snapshot:
    """One version of a table: ``data`` holds every row read or written since, ``live`` says
    which still exist. Rows read together form the first block (in partition order when there
    is an IVF, else insertion order); each write of this process appends a block."""

    def __init__(
        self,
        version: int,
        data: pa.Table,
        blocks: list[tuple[Vectors, Vectors]],
        live: Mask,
        index: ivf.Ivf | None = None,
        ordered: bool = False,
        graph: hnsw.Graph | None = None,
    ) -> None:
        self.version = version
        self.data = data
        self.blocks = blocks  # (vectors, squared norms) per block, in position order
        self.starts = np.cumsum([0] + [len(v) for v, _ in blocks]).astype(np.int64)
        self.live = live
        self.index = index
        self.graph = graph  # of the first block, when there is an IVF
        self.ordered = ordered  # positions are in insertion order
        self.seq = data.column(layout.SEQ).to_numpy()
        # every row's squared norm, once per snapshot rather than once per query
        self.squares = blocks[0][1] if len(blocks) == 1 else np.concatenate([s for _, s in blocks])
        self.num_rows = int(live.sum())
        self.nbytes = int(data.nbytes + live.nbytes + self.seq.nbytes)
        self.nbytes += sum(s.nbytes for _, s in blocks) + (
            self.squares.nbytes if len(blocks) > 1 else 0
        )
        self.nbytes += 0 if graph is None else graph.nbytes

    @classmethod
    def read(
        cls,
        version: int,
        data: pa.Table,
        partitions: int = 0,
        space: Space = "l2",
        graph: hnsw.Graph | None = None,
    ) -> Snapshot:
        """A snapshot of rows read from the table; partitioned when ``partitions`` > 1, and
        then given ``graph`` (empty: :meth:`build_graph` fills it)."""
        data = data.sort_by([(layout.SEQ, "ascending"), (layout.ID, "ascending")])
        index = None
        if partitions > 1 and data.num_rows > partitions:
            index, order = ivf.build(_vectors(data), space, partitions)
            data = data.take(pa.array(order, pa.int64()))
        live = np.ones(data.num_rows, np.bool_)
        graph = graph if index is not None else None
        return cls(version, data, [_block(data)], live, index, index is None, graph)

    def build_graph(self, space: Space, ef: int) -> None:
        """Fill the graph (slow: run it off the request path); snapshots advanced from this
        one meanwhile share it."""
        if self.graph is not None:
            self.graph.build(self.blocks[0][0], space, ef)

    @property
    def churn(self) -> int:
        """Rows written or removed since the snapshot was read."""
        return int(self.starts[-1] - self.starts[1] + (~self.live[: self.starts[1]]).sum())

    def compacted(self, partitions: int, space: Space, graph: hnsw.Graph | None = None) -> Snapshot:
        """The same rows read afresh (one block, new partitions, ``graph`` to fill)."""
        live = self.data.filter(pa.array(self.live))
        return Snapshot.read(self.version, live, partitions, space, graph)

    # ------------------------------------------------------------------ advancing

    def inserted(self, version: int, rows: pa.Table) -> Snapshot:
        """The next version after an add: ``rows`` whose ids are new are appended."""
        ids = self.data.column(layout.ID)
        present = ids.filter(pa.array(self._holding(rows) & self.live))
        new = rows.filter(pc.invert(pc.is_in(rows.column(layout.ID), value_set=present)))
        return self._appended(version, new, self.live)

    def replaced(self, version: int, rows: pa.Table) -> Snapshot:
        """The next version after an upsert or update: ``rows`` replace those with their ids."""
        return self._appended(version, rows, self.live & ~self._holding(rows))

    def without(self, version: int, doomed: Mask) -> Snapshot:
        """The next version after a delete of the rows ``doomed`` marks."""
        live = self.live & ~doomed
        return Snapshot(version, self.data, self.blocks, live, self.index, self.ordered, self.graph)

    def _holding(self, rows: pa.Table) -> Mask:
        """Positions whose id is one of ``rows``'."""
        ids = rows.column(layout.ID).combine_chunks()
        return _mask(pc.is_in(self.data.column(layout.ID), value_set=ids))

    def _appended(self, version: int, rows: pa.Table, live: Mask) -> Snapshot:
        """``rows`` after the others. Without an IVF all rows stay one block (a copy of the
        table: small); with one, the rows written since the read are folded into a second."""
        if rows.num_rows == 0:
            return Snapshot(
                version, self.data, self.blocks, live, self.index, self.ordered, self.graph
            )
        rows = _conformed(rows, self.data.schema)
        seq = rows.column(layout.SEQ).to_numpy()
        later = len(self.seq) == 0 or int(seq.min()) > int(self.seq.max())
        live = np.concatenate([live, np.ones(rows.num_rows, np.bool_)])
        if self.index is None:
            data = pa.concat_tables([self.data, rows]).combine_chunks()
            return Snapshot(version, data, [_block(data)], live, None, self.ordered and later)
        first = int(self.starts[1])
        tail = pa.concat_tables([self.data.slice(first), rows]).combine_chunks()
        data = pa.concat_tables([self.data.slice(0, first), tail])
        blocks = [self.blocks[0], _block(tail)]
        return Snapshot(version, data, blocks, live, self.index, False, self.graph)

    # ------------------------------------------------------------------ reading

    def rows(self, mask: Mask, offset: int, limit: int | None, columns: list[str]) -> pa.Table:
        """Matching rows in insertion order, after ``offset``, at most ``limit``."""
        found = self._in_order(np.flatnonzero(mask & self.live))
        found = found[offset:] if limit is None else found[offset : offset + limit]
        return self.data.select(columns).take(pa.array(found, pa.int64()))

    def nearest(
        self,
        vector: Vectors,
        k: int,
        mask: Mask,
        space: Space,
        columns: list[str],
        effort: Effort | None = None,
        exact_rows: int = 0,
    ) -> pa.Table:
        """The ``k`` matching rows nearest to ``vector``, ascending by distance (ties in
        insertion order), with a ``_distance`` column computed as the engine does.

        Exact over the matching rows, unless there is an IVF, ``effort`` is given and more
        than ``exact_rows`` rows match: then candidates are re-ranked exactly, the graph's
        nearest rows when it is built and the filter keeps most rows, else the best of a scan,
        in the reduced space, of the nearest partitions that hold any matching row (so a
        filter that selects a few partitions keeps its recall); rows written since the read
        are always candidates.
        """
        query = np.asarray(vector, dtype=np.float32)
        allowed = mask & self.live
        if space == "cosine":  # no angle to a zero vector: the engine leaves such rows out
            allowed &= self.squares > 0 if query.any() else False
        if self.index is not None and effort is not None and allowed.sum() > exact_rows:
            candidates = self._graphed(query, allowed, space, effort.ef, k)
            if candidates is None:
                candidates = self._probed(query, allowed, space, effort.probes, k)
        else:
            candidates = np.flatnonzero(allowed)
        scores = self._scores(candidates, query, space)
        if k < len(candidates):
            top = np.argpartition(scores, k - 1)[:k]
            candidates = candidates[top]
        distances = _distances(self._gather(candidates), query, space)
        order = np.lexsort((self.seq[candidates], distances))
        chosen, distances = candidates[order], distances[order]
        rows = self.data.select(columns).take(pa.array(chosen, pa.int64()))
        return rows.append_column(layout.DISTANCE, pa.array(distances, pa.float32()))

    def _graphed(
        self, query: Vectors, allowed: Mask, space: Space, ef: int, k: int
    ) -> Positions | None:
        """Candidates: the graph's nearest rows that match (if the graph's nearest set is
        right, the nearest matching rows are among them when at least ``k`` are) and every
        matching row appended since the read; ``None`` when the graph cannot answer."""
        if self.graph is None or not self.graph.ready:
            return None
        first = allowed[: self.starts[1]]
        matching = len(first) if first.all() else int(first.sum())
        share = matching / max(1, len(first))
        if share < GRAPH_MIN_SHARE:
            return None
        found = self.graph.nearest(query, hnsw.fetch_size(k, share, ef), space, ef)
        if found is None:
            return None
        if matching < len(first):
            found = found[first[found]]
            if len(found) < min(k, matching):
                return None
        appended = np.flatnonzero(allowed[self.starts[1] :]) + self.starts[1]
        return np.concatenate([found, appended])

    def _probed(
        self, query: Vectors, allowed: Mask, space: Space, probes: int, k: int
    ) -> Positions:
        """Candidates: the approximately best of the matching rows in the ``probes`` nearest
        partitions that hold any, and every matching row appended since the read."""
        assert self.index is not None
        first = allowed[: self.starts[1]]
        matching = len(first) if first.all() else int(first.sum())
        # A filter's nearest matching rows lie farther out: the fewer rows match, the more
        # partitions (of those holding any) are probed and the more candidates re-ranked.
        spread = math.sqrt(len(first) / max(1, matching))
        ranked = self.index.ranked(query)
        if matching < len(first):
            offsets = self.index.offsets
            counts = np.add.reduceat(first, np.minimum(offsets[:-1], len(first) - 1))
            ranked = ranked[((counts > 0) & (np.diff(offsets) > 0))[ranked]]
        rows, dots = self.index.dots(ranked[: math.ceil(probes * spread)], query)
        if matching < len(first):
            rows, dots = rows[first[rows]], dots[first[rows]]
        keep = math.ceil(max(k * RERANK_FACTOR, RERANK_MIN) * spread)
        if len(rows) > keep:
            rows = rows[self._plausible(rows, dots, query, space, k, keep)]
        appended = np.flatnonzero(allowed[self.starts[1] :]) + self.starts[1]
        return np.concatenate([rows, appended])

    def _plausible(
        self, rows: Positions, dots: Vectors, query: Vectors, space: Space, k: int, keep: int
    ) -> Positions:
        """Which of the scanned ``rows`` to re-rank exactly (indexes into ``rows``): each whose
        score, within ``CONFIDENCE`` times its approximation's error, could still be among the
        ``k`` best, and at least the ``keep`` best approximately. The error grows with what the
        reduced space misses: a filter along a direction it leaves out (rows far from the query
        whose scores all differ by little) keeps thousands where the query's own neighbourhood
        keeps hundreds."""
        assert self.index is not None
        squares = self.blocks[0][1][rows]
        error = CONFIDENCE * self.index.errors(rows, query)
        best = _ranking(dots + error, squares, query, space)
        worst = _ranking(dots - error, squares, query, space)
        plausible = np.flatnonzero(best <= np.partition(worst, k - 1)[k - 1])
        if len(plausible) >= keep:
            return plausible
        return np.argpartition(_ranking(dots, squares, query, space), keep - 1)[:keep]

    def _in_order(self, positions: Positions) -> Positions:
        if self.ordered:
            return positions
        return positions[np.argsort(self.seq[positions], kind="stable")]

    def _gather(self, positions: Positions) -> Vectors:
        """The vectors at ``positions``."""
        if len(self.blocks) == 1:
            return self.blocks[0][0][positions]
        block = np.searchsorted(self.starts, positions, side="right") - 1
        out = np.empty((len(positions), self.blocks[0][0].shape[1]), np.float32)
        for b in np.unique(block):
            at = block == b
            out[at] = self.blocks[b][0][positions[at] - self.starts[b]]
        return out

    def _scores(self, positions: Positions, query: Vectors, space: Space) -> Vectors:
        """Rank scores (lower is nearer) of the rows at ``positions``."""
        return _scores(self._gather(positions), self.squares[positions], query, space)


def _scores(vectors: Vectors, squares: Vectors, query: Vectors, space: Space) -> Vectors:
    """Rank with one matrix product; the winners' distances are then computed directly (the
    expanded form of squared L2 loses precision near zero)."""
    return _ranking(vectors @ query, squares, query, space)


def _ranking(dots: Vectors, squares: Vectors, query: Vectors, space: Space) -> Vectors:
    """Rank scores (lower is nearer) from dot products with the query and squared norms."""
    if space == "l2":
        scores = squares - 2 * dots
    elif space == "ip":
        scores = -dots
    else:
        scores = -dots / (np.sqrt(squares) * np.linalg.norm(query))
    return np.asarray(scores, dtype=np.float32)


def _distances(vectors: Vectors, query: Vectors, space: Space) -> Vectors:
    """Chroma's distances: squared L2, ``1 - cos`` and ``1 - dot`` (as LanceDB computes them)."""
    if space == "l2":
        difference = vectors - query
        distances = np.einsum("ij,ij->i", difference, difference)
    elif space == "ip":
        distances = 1 - vectors @ query
    else:
        norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
        distances = 1 - (vectors @ query) / norms
    return np.asarray(distances, dtype=np.float32)


def _block(data: pa.Table) -> tuple[Vectors, Vectors]:
    vectors = _vectors(data)
    return vectors, np.einsum("ij,ij->i", vectors, vectors)


def _vectors(data: pa.Table) -> Vectors:
    column = data.column(layout.EMBEDDING).combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat, dtype=np.float32).reshape(-1, column.type.list_size)


def _mask(values: pa.ChunkedArray | pa.Array) -> Mask:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _conformed(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` with every column of ``schema`` (absent ones null), in its order and types."""
    columns = [
        data.column(f.name) if f.name in data.column_names else pa.nulls(data.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
