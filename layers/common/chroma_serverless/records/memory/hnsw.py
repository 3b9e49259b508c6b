"""A navigable small-world graph (HNSW) over the rows a large snapshot read.

Chroma's own server answers an unfiltered query from an HNSW graph; so does a snapshot here
once its graph is built: a query visits a few thousand rows instead of the quarter of the table
an IVF probe scans, in C++ without holding the GIL (``hnswlib``, the build Chroma used before
1.0), so concurrent queries run in parallel. The graph is built by a background thread after
the snapshot is read (about 20 s for 100k × 384 on two cores); until then, and for filters that
exclude many rows, the IVF answers. It indexes the snapshot's first block by position, so the
snapshots this process's writes derive from it share it; a rebuild makes a new one.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from chroma_serverless.types import Space, Vectors

Positions = np.ndarray[Any, np.dtype[np.int64]]

# hnswlib's spaces: squared L2, and ``1 - dot`` (cosine is ``ip`` over unit vectors).
SPACES = {"l2": "l2", "ip": "ip", "cosine": "ip"}
BUILD_CHUNK_ROWS = 20_000


class Graph:
    """An HNSW graph, empty until :meth:`build` returns; safe to query from many threads."""

    def __init__(self, rows: int, dimension: int, neighbours: int, construction: int) -> None:
        self.neighbours = neighbours
        self.construction = construction
        # hnswlib's layout: each row's vector, its links on the ground layer, its label
        self.nbytes = rows * (4 * dimension + 8 * neighbours + 16)
        self._index: Any = None

    @property
    def ready(self) -> bool:
        return self._index is not None

    def build(self, vectors: Vectors, space: Space, ef: int) -> None:
        """Index ``vectors`` (row ``i`` under label ``i``) with every core."""
        import hnswlib

        index = hnswlib.Index(space=SPACES[space], dim=vectors.shape[1])
        index.init_index(
            max_elements=max(1, len(vectors)), ef_construction=self.construction, M=self.neighbours
        )
        # in random order: rows arrive sorted by partition, and a graph built cluster after
        # cluster links the clusters poorly (cosine recall@10 0.956 instead of 0.99); a chunk
        # at a time, so the permuted (and, for cosine, normalised) copy is a chunk, not the
        # table again (1.5 GB each at 1M × 384)
        order = np.random.default_rng(0).permutation(len(vectors))
        for start in range(0, len(order), BUILD_CHUNK_ROWS):
            chunk = order[start : start + BUILD_CHUNK_ROWS]
            points = _unit(vectors[chunk]) if space == "cosine" else vectors[chunk]
            index.add_items(points, chunk, num_threads=os.cpu_count() or 1)
        index.set_ef(ef)
        self._index = index

    def nearest(self, query: Vectors, count: int, space: Space, ef: int) -> Positions | None:
        """Positions of about the ``count`` rows nearest to ``query`` (all rows of a smaller
        graph; at least ``ef`` are considered); ``None`` when the graph cannot answer (not built,
        or it found fewer)."""
        index = self._index
        if index is None:
            return None
        count = min(count, index.get_current_count())
        if index.ef != ef:  # the collection's ef_search changed (a benign race: any ef works)
            index.set_ef(ef)
        point = _unit(query[None, :]) if space == "cosine" else query[None, :]
        try:
            labels, _ = index.knn_query(point, k=count, num_threads=1)
        except RuntimeError:  # hnswlib found fewer than ``count`` (a sparse neighbourhood)
            return None
        return np.asarray(labels[0], np.int64)


def fetch_size(k: int, share: float, ef: int) -> int:
    """Rows to fetch so that about ``k`` of them match a filter matching ``share`` of the rows,
    with a margin, and at least the ``ef`` the search keeps anyway (re-ranking them exactly
    costs little; a filter then keeps the graph's recall)."""
    return max(ef, k if share >= 1 else math.ceil(k / share) + k)


def _unit(vectors: Vectors) -> Vectors:
    """Unit-length rows (zero rows stay zero: no angle, and the filter leaves them out)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms > 0, norms, 1), dtype=np.float32)
