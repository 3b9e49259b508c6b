"""Deterministic synthetic embedding datasets, held-out queries and exact ground truth.

Two 384-d, L2-normalised datasets meant for the cosine metric (see
``shared/docs/lancedb-facts.md`` section 4):

- ``clustered``: 1000 Gaussian cluster centres (N(0, 1) per dimension) plus N(0, 0.5^2) noise
  per dimension. The 10 nearest neighbours of a query sit in its own cluster at nearly equal
  distances, so quantisation errors reorder them easily.
- ``lowrank``: a 24-d Gaussian latent, a random linear map to 384-d, ``tanh``, plus N(0, 0.05^2)
  noise. A smooth low-dimensional manifold, the most embedding-like of the two.

Rows are produced in fixed blocks of ``BLOCK`` rows, each from its own seeded stream, so the first
``n`` rows are the same whatever the total: the 100k table is a prefix of the 1M table. Queries
come from the same model with a separate stream, so they are not rows of the table.

Other benchmarks can use::

    from synthetic import load  # with bench/ on sys.path
    ds = load("lowrank", 100_000)
    ds.vectors, ds.queries, ds.truth  # float32 (n, 384), float32 (q, 384), int64 (q, 10)

``python bench/synthetic.py --dataset lowrank --rows 100000`` prints a summary and fills the cache
(``bench/results/cache/``, git-ignored).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

DatasetName = Literal["clustered", "lowrank"]
NAMES: tuple[DatasetName, ...] = ("clustered", "lowrank")

DIM = 384
BLOCK = 50_000
NUM_CLUSTERS = 1000
CLUSTER_SIGMA = 0.5
LATENT_DIM = 24
LOWRANK_NOISE = 0.05
CACHE = Path(__file__).parent / "results" / "cache"

# Stream tags mixed into the seed so that model, rows and queries never share a stream.
_MODEL, _ROWS, _QUERIES = 0, 1, 2


@dataclass(frozen=True)
class Dataset:
    """A dataset with held-out queries and their exact top-k neighbours (row indices)."""

    name: DatasetName
    vectors: np.ndarray  # float32 (n, DIM), unit norm
    queries: np.ndarray  # float32 (q, DIM), unit norm
    truth: np.ndarray  # int64 (q, k), row indices sorted by ascending cosine distance


def _normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32, copy=False)


class _Model:
    """The fixed generative model of a dataset (cluster centres or the latent map)."""

    def __init__(self, name: DatasetName, seed: int) -> None:
        if name not in NAMES:
            raise ValueError(f"Expected dataset in {NAMES}, got {name!r}")
        self.name = name
        rng = np.random.default_rng([seed, _MODEL])
        if name == "clustered":
            self.centres = rng.standard_normal((NUM_CLUSTERS, DIM), dtype=np.float32)
        else:
            scale = np.float32(1.0 / np.sqrt(LATENT_DIM))
            self.weights = rng.standard_normal((LATENT_DIM, DIM), dtype=np.float32) * scale

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        if self.name == "clustered":
            labels = rng.integers(0, NUM_CLUSTERS, size=count)
            x = rng.standard_normal((count, DIM), dtype=np.float32)
            x *= np.float32(CLUSTER_SIGMA)
            x += self.centres[labels]
        else:
            latent = rng.standard_normal((count, LATENT_DIM), dtype=np.float32)
            x = np.tanh(latent @ self.weights)
            x += rng.standard_normal((count, DIM), dtype=np.float32) * np.float32(LOWRANK_NOISE)
        return _normalise(x)


def iter_blocks(name: DatasetName, rows: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Yield the dataset's rows in order, ``BLOCK`` at a time (the last block may be shorter)."""
    model = _Model(name, seed)
    for start in range(0, rows, BLOCK):
        block = model.sample(np.random.default_rng([seed, _ROWS, start // BLOCK]), BLOCK)
        yield block[: min(BLOCK, rows - start)]


def vectors(name: DatasetName, rows: int, seed: int = 0) -> np.ndarray:
    """The first ``rows`` rows of the dataset, float32 (rows, DIM)."""
    out = np.empty((rows, DIM), dtype=np.float32)
    for i, block in enumerate(iter_blocks(name, rows, seed)):
        out[i * BLOCK : i * BLOCK + len(block)] = block
    return out


def queries(name: DatasetName, count: int = 200, seed: int = 0) -> np.ndarray:
    """Held-out queries drawn from the same model, float32 (count, DIM)."""
    return _Model(name, seed).sample(np.random.default_rng([seed, _QUERIES]), count)


def exact_top_k(blocks: Iterator[np.ndarray], query_vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """Brute-force top-k row indices by cosine distance, streaming over row blocks.

    Rows and queries must be unit norm, so cosine distance is ``1 - dot``. Memory is one block
    of scores, (q, BLOCK) float32, plus the running (q, k) best.
    """
    q = len(query_vectors)
    best_sim = np.full((q, k), -np.inf, dtype=np.float32)
    best_idx = np.full((q, k), -1, dtype=np.int64)
    offset = 0
    for block in blocks:
        sims = query_vectors @ block.T  # (q, len(block))
        kk = min(k, sims.shape[1])
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        cand_sim = np.concatenate([best_sim, np.take_along_axis(sims, part, axis=1)], axis=1)
        cand_idx = np.concatenate([best_idx, part + offset], axis=1)
        top = np.argsort(-cand_sim, axis=1, kind="stable")[:, :k]
        best_sim = np.take_along_axis(cand_sim, top, axis=1)
        best_idx = np.take_along_axis(cand_idx, top, axis=1)
        offset += block.shape[0]
    return best_idx


def ground_truth(
    name: DatasetName, rows: int, num_queries: int = 200, k: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Queries and their exact top-k row indices; cached as ``.npy`` under ``CACHE``."""
    qv = queries(name, num_queries, seed)
    path = CACHE / f"truth_{name}_{rows}_{num_queries}_{k}_{seed}.npy"
    if path.exists():
        return qv, np.load(path)
    truth = exact_top_k(iter_blocks(name, rows, seed), qv, k)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, truth)
    return qv, truth


def load(
    name: DatasetName, rows: int, num_queries: int = 200, k: int = 10, seed: int = 0
) -> Dataset:
    """Rows, held-out queries and exact ground truth for one dataset."""
    qv, truth = ground_truth(name, rows, num_queries, k, seed)
    return Dataset(name, vectors(name, rows, seed), qv, truth)


def recall_at_k(found: list[list[int]], truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / k."""
    k = truth.shape[1]
    hits = [len(set(f[:k]) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=NAMES, default="lowrank")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    qv, truth = ground_truth(args.dataset, args.rows, args.queries, seed=args.seed)
    elapsed = time.perf_counter() - started
    sample = vectors(args.dataset, min(args.rows, 20_000), args.seed)
    nn = np.asarray(qv @ sample.T)
    print(f"{args.dataset}: {args.rows} x {DIM}, {len(qv)} queries, truth in {elapsed:.1f} s")
    print(f"  query-row cosine sim: mean {nn.mean():.3f}, max per query {nn.max(1).mean():.3f}")
    print(f"  first query's top-10 rows: {truth[0].tolist()}")


if __name__ == "__main__":
    main()
