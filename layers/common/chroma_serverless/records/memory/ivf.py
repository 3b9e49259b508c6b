"""An inverted-file (IVF) partitioning of vectors held in memory, in numpy.

k-means centroids split the vectors into partitions; a query ranks the centroids, scores the
vectors of the nearest few partitions in a reduced space (their projection on the sample's
principal components: a sixth of the bytes to scan at 384 dimensions) and re-ranks the best
candidates with the full vectors. Rows are kept in partition order, so a partition is one
contiguous range. Building it for 100k × 384 takes about a second (k-means on a sample, one
pass to assign every vector); it is built once per in-memory snapshot of a large table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from chroma_serverless.types import Space, Vectors

Ints = np.ndarray[Any, np.dtype[np.int64]]

SAMPLE_PER_CENTROID = 40  # k-means trains on this many vectors per centroid, at most
REDUCED_DIMENSIONS = 64  # principal components candidates are scored in
ITERATIONS = 8
ASSIGN_BLOCK = 8192  # vectors assigned per matrix product (bounds the scratch memory)


@dataclass(frozen=True)
class Ivf:
    """Centroids and, for partition ``p``, rows ``offsets[p]:offsets[p + 1]`` of the vectors in
    partition order."""

    centroids: Vectors
    offsets: Ints
    space: Space
    mean: Vectors  # of the sample
    basis: Vectors  # (dimension, reduced) principal components
    reduced: Vectors  # every row projected: (row - mean) @ basis, in partition order
    along: Vectors  # every row's dot product with the mean
    outside: Vectors  # every row's length outside the reduced space: |row - mean - projection|

    def dots(self, partitions: Ints, query: Vectors) -> tuple[Ints, Vectors]:
        """The rows of ``partitions`` and their approximate dot products with ``query``."""
        centred, along = self._projected(query)
        spans = [(int(self.offsets[p]), int(self.offsets[p + 1])) for p in partitions]
        dots = np.concatenate([self.reduced[start:stop] @ centred for start, stop in spans])
        rows = self.rows(partitions)
        return rows, np.asarray(dots + self.along[rows] + along, np.float32)

    def errors(self, rows: Ints, query: Vectors) -> Vectors:
        """The scale of each row's error in :meth:`dots`: the dot product of the parts of row
        and query outside the reduced space, as if their directions there were random (its
        standard deviation: the product of their lengths over the root of the dimensions
        left out)."""
        centred = query - self.mean
        projected = centred @ self.basis
        outside = math.sqrt(max(float(centred @ centred - projected @ projected), 0.0))
        left = max(1, self.basis.shape[0] - self.basis.shape[1])
        return np.asarray(self.outside[rows] * (outside / math.sqrt(left)), np.float32)

    def _projected(self, query: Vectors) -> tuple[Vectors, float]:
        """The query across the mean (on the principal components) and the constant part of
        its dot products: a row's dot product with the query is then exact along the mean and
        approximate across it."""
        centred = np.asarray((query - self.mean) @ self.basis, np.float32)
        return centred, float(query @ self.mean) - float(self.mean @ self.mean)

    @property
    def partitions(self) -> int:
        return len(self.centroids)

    def ranked(self, query: Vectors) -> Ints:
        """Partitions nearest to ``query`` first."""
        scores = _centroid_scores(self.centroids, self.space, query[None, :])[0]
        return np.argsort(scores, kind="stable").astype(np.int64)

    def rows(self, partitions: Ints) -> Ints:
        """The rows of ``partitions``, in their order."""
        starts, stops = self.offsets[partitions], self.offsets[partitions + 1]
        sizes = stops - starts
        shift = np.repeat(starts - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
        return np.asarray(shift + np.arange(int(sizes.sum())), np.int64)


def build(vectors: Vectors, space: Space, partitions: int, seed: int = 0) -> tuple[Ivf, Ints]:
    """Partition ``vectors``; returns the IVF and the permutation that puts rows in partition
    order (``vectors[order]`` is what the IVF's offsets index)."""
    rng = np.random.default_rng(seed)
    points = _normalized(vectors) if space != "l2" else vectors
    partitions = max(1, min(partitions, len(points)))
    sample_size = min(len(points), partitions * SAMPLE_PER_CENTROID)
    sample_rows = np.sort(rng.choice(len(points), sample_size, replace=False))
    sample = points[sample_rows]
    centroids = sample[rng.choice(sample_size, partitions, replace=False)].copy()
    for _ in range(ITERATIONS):
        assigned = _nearest_centroids(centroids, space, sample)
        centroids = _means(sample, assigned, centroids, rng)
        if space != "l2":
            centroids = _normalized(centroids)
    assigned = _nearest_centroids(centroids, space, points)
    order = np.argsort(assigned, kind="stable").astype(np.int64)
    counts = np.bincount(assigned, minlength=partitions)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    raw = vectors[sample_rows]
    mean = raw.mean(axis=0, dtype=np.float32)
    basis = _principal_components(raw - mean, REDUCED_DIMENSIONS)
    ordered = vectors[order]
    reduced = np.ascontiguousarray((ordered - mean) @ basis, dtype=np.float32)
    along = np.asarray(ordered @ mean, dtype=np.float32)
    # |row - mean|^2 less its projection's, from what is at hand (no centred copy of the rows)
    outside = (
        np.einsum("ij,ij->i", ordered, ordered, dtype=np.float64)
        - 2 * along
        + float(mean @ mean)
        - np.einsum("ij,ij->i", reduced, reduced, dtype=np.float64)
    )
    outside = np.sqrt(np.maximum(outside, 0)).astype(np.float32)
    return Ivf(centroids, offsets, space, mean, basis, reduced, along, outside), order


def _centroid_scores(centroids: Vectors, space: Space, vectors: Vectors) -> Vectors:
    """Lower is nearer: squared L2 to each centroid up to a per-row constant (l2), or minus
    the dot product with each (unit-norm) centroid (cosine and ip)."""
    dots = vectors @ centroids.T
    if space == "l2":
        squares = np.einsum("ij,ij->i", centroids, centroids)
        return np.asarray(squares[None, :] - 2 * dots, dtype=np.float32)
    return np.asarray(-dots, dtype=np.float32)


def _nearest_centroids(centroids: Vectors, space: Space, points: Vectors) -> Ints:
    out = np.empty(len(points), np.int64)
    for start in range(0, len(points), ASSIGN_BLOCK):
        block = points[start : start + ASSIGN_BLOCK]
        out[start : start + len(block)] = np.argmin(_centroid_scores(centroids, space, block), 1)
    return out


def _principal_components(centred: Vectors, count: int) -> Vectors:
    """The ``count`` leading principal axes of ``centred`` rows, as columns."""
    covariance = centred.T @ centred
    _, vectors = np.linalg.eigh(covariance.astype(np.float64))
    return np.ascontiguousarray(vectors[:, ::-1][:, :count], dtype=np.float32)


def _means(points: Vectors, assigned: Ints, previous: Vectors, rng: np.random.Generator) -> Vectors:
    """Each partition's mean; an empty partition is re-seeded with a random point."""
    onehot = np.zeros((len(previous), len(points)), np.float32)
    onehot[assigned, np.arange(len(points))] = 1
    sums = onehot @ points
    counts = np.bincount(assigned, minlength=len(previous)).astype(np.float32)
    empty = counts == 0
    means = sums / np.maximum(counts, 1)[:, None]
    if empty.any():
        means[empty] = points[rng.choice(len(points), int(empty.sum()), replace=False)]
    return np.asarray(means, dtype=np.float32)


def _normalized(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
