"""Small collections served from memory: one table version held as Arrow and numpy.

For a table of a few thousand rows the engine's fixed cost per query (planning, a scan per
fragment; a request per fragment on S3) dominates, and grows with every small write until
compaction. A whole small table costs little memory, and a version never changes, so a snapshot
read once per version answers ``get`` and ``query`` with array operations: filters through
:mod:`chroma_serverless.masks`, exact nearest neighbours through one matrix product. Snapshots
live in a cache bounded in bytes (least recently used out first) and are rebuilt lazily, by the
first read after the table's version moved.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from chroma_serverless import layout

if TYPE_CHECKING:
    from chroma_serverless.masks import Mask
    from chroma_serverless.types import Space, Vectors


class Snapshot:
    """One version of a table, rows in insertion order."""

    def __init__(self, version: int, data: pa.Table) -> None:
        self.version = version
        self.data = data.sort_by([(layout.SEQ, "ascending"), (layout.ID, "ascending")])
        column = self.data.column(layout.EMBEDDING).combine_chunks()
        dimension = column.type.list_size
        flat = column.flatten().to_numpy(zero_copy_only=False)
        self.vectors: Vectors = np.ascontiguousarray(flat, dtype=np.float32).reshape(-1, dimension)
        self.squares = np.einsum("ij,ij->i", self.vectors, self.vectors)
        self.nbytes = int(self.data.nbytes + self.vectors.nbytes + self.squares.nbytes)

    def rows(self, mask: Mask, offset: int, limit: int | None, columns: list[str]) -> pa.Table:
        """Matching rows in insertion order, after ``offset``, at most ``limit``."""
        found = np.flatnonzero(mask)
        found = found[offset:] if limit is None else found[offset : offset + limit]
        return self.data.select(columns).take(pa.array(found, pa.int64()))

    def nearest(
        self, vector: Vectors, k: int, mask: Mask, space: Space, columns: list[str]
    ) -> pa.Table:
        """The ``k`` matching rows nearest to ``vector``, ascending by distance (ties in
        insertion order), with a ``_distance`` column computed as the engine does."""
        candidates = np.flatnonzero(mask)
        query = np.asarray(vector, dtype=np.float32)
        if space == "cosine":  # no angle to a zero vector: the engine leaves such rows out
            candidates = candidates[self.squares[candidates] > 0] if query.any() else candidates[:0]
        # Rank with one matrix product, then compute the winners' distances directly (the
        # expanded form of squared L2 loses precision near zero).
        rank = self._scores(candidates, query, space)
        if k < len(candidates):
            top = np.argpartition(rank, k - 1)[:k]
        else:
            top = np.arange(len(candidates))
        chosen = candidates[top]
        distances = _distances(self.vectors[chosen], query, space)
        order = np.lexsort((chosen, distances))
        chosen, distances = chosen[order], distances[order]
        rows = self.data.select(columns).take(pa.array(chosen, pa.int64()))
        return rows.append_column(layout.DISTANCE, pa.array(distances, pa.float32()))

    def _scores(self, rows: np.ndarray[Any, Any], query: Vectors, space: Space) -> Vectors:
        dots = self.vectors[rows] @ query
        if space == "l2":
            scores = self.squares[rows] - 2 * dots
        elif space == "ip":
            scores = -dots
        else:
            scores = -dots / (np.sqrt(self.squares[rows]) * np.linalg.norm(query))
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


class SnapshotCache:
    """Snapshots by collection id, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Snapshot] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, collection_id: str, version: int) -> Snapshot | None:
        with self._lock:
            snapshot = self._entries.get(collection_id)
            if snapshot is None or snapshot.version != version:
                return None
            self._entries.move_to_end(collection_id)
            return snapshot

    def put(self, collection_id: str, snapshot: Snapshot) -> None:
        with self._lock:
            self._pop(collection_id)
            if snapshot.nbytes > self.max_bytes:
                return
            self._entries[collection_id] = snapshot
            self._bytes += snapshot.nbytes
            while self._bytes > self.max_bytes:
                self._pop(next(iter(self._entries)))

    def discard(self, collection_id: str) -> None:
        with self._lock:
            self._pop(collection_id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _pop(self, collection_id: str) -> None:
        snapshot = self._entries.pop(collection_id, None)
        if snapshot is not None:
            self._bytes -= snapshot.nbytes
