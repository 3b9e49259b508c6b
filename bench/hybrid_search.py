"""Hybrid search (dense + BM25, fused by RRF) at 100k documents through the official client.

    python bench/hybrid_search.py [--rows 100000] [--queries 100] [--limit 100] \\
        [--out bench/results/hybrid_search.json]

1. Data: ``--rows`` 384-d unit vectors (``bench/synthetic.py``, ``lowrank``) and generated
   text: 40-80 words per document drawn from a Zipf-distributed vocabulary of 20,000 made-up
   words. The collection's schema has a BM25 sparse index on ``sparse_embedding`` fed from the
   documents (``ChromaBm25EmbeddingFunction``, ``bm25=True``), so ``add(documents=...,
   embeddings=...)`` computes the sparse vectors in the client, as a user's add does.
2. ``chroma-serverless run`` (embedded default, fresh temp dir, free port); ingest in client
   batches of ``--batch``; stop it, run ``chroma-serverless maintain`` (IVF-PQ, scalar and
   sparse indexes) and start it again on the same dir.
3. Queries: 3 words of a random document plus one random word; each search is
   ``Rrf([Knn(dense, limit, return_rank, default=limit), Knn(bm25, key="sparse_embedding",
   limit, return_rank, default=limit)])`` with ``limit(10)``; also dense-only and BM25-only
   searches (``limit(10)``) for reference. Latency p50/p99 is the client's wall time per search,
   after ``--warmup`` searches.
4. Ground truth: the same expressions evaluated by brute force in this process (exact cosine
   over all rows; BM25 ``1 - q·d`` with IDF over all rows, from the same embedding function);
   recall@10 = |found ∩ truth| / 10, averaged.

Writes ``--out`` (JSON). The client runs on the same machine as the server; timings are wall
clock, so look at ``load_average`` in the JSON. The client's BM25 stemmer (``snowballstemmer``,
pure Python, ~0.1 ms a word) is memoized in this process: the same stems, in seconds instead of
the ~20 minutes that stemming 2 x 6 million words would take.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import Server, maintain, ms_percentiles, running  # noqa: E402

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection
    from chromadb.base_types import SparseVector

RESULTS = Path(__file__).resolve().parent / "results" / "hybrid_search.json"
VOCABULARY = 20_000
KEY = "sparse_embedding"
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def memoize_stemmer() -> None:
    from chromadb.utils.embedding_functions.schemas import bm25_tokenizer

    adapter = bm25_tokenizer._SnowballStemmerAdapter
    adapter.stem = functools.lru_cache(maxsize=None)(adapter.stem)  # type: ignore[method-assign]


def vocabulary(rng: np.random.Generator) -> list[str]:
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(LETTERS, int(rng.integers(4, 10)))))
    return sorted(words)


def documents(rows: int, words: list[str], rng: np.random.Generator) -> list[str]:
    ranks = np.minimum(rng.zipf(1.1, size=rows * 80), VOCABULARY) - 1
    lengths = rng.integers(40, 81, size=rows)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return [" ".join(words[r] for r in ranks[starts[i] : starts[i + 1]]) for i in range(rows)]


class Bm25Truth:
    """Exact BM25 search over every document: postings per term, IDF over all rows."""

    def __init__(self, vectors: list[SparseVector]) -> None:
        rows = np.concatenate([np.full(len(v.indices), i) for i, v in enumerate(vectors)])
        terms = np.concatenate([np.asarray(v.indices, np.int64) for v in vectors])
        values = np.concatenate([np.asarray(v.values, np.float32) for v in vectors])
        order = np.argsort(terms, kind="stable")
        self.rows, self.terms, self.values = rows[order], terms[order], values[order]
        self.unique, self.starts = np.unique(self.terms, return_index=True)
        self.starts = np.append(self.starts, len(self.terms))
        self.size = len(vectors)

    def nearest(self, query: SparseVector, limit: int) -> list[int]:
        dots = np.zeros(self.size)
        touched = np.zeros(self.size, bool)
        for term, weight in zip(query.indices, query.values, strict=True):
            at = np.searchsorted(self.unique, term)
            if at == len(self.unique) or self.unique[at] != term:
                continue
            start, end = self.starts[at], self.starts[at + 1]
            df = end - start
            idf = np.log1p((self.size - df + 0.5) / (df + 0.5))
            np.add.at(dots, self.rows[start:end], weight * idf * self.values[start:end])
            touched[self.rows[start:end]] = True
        candidates = np.flatnonzero(touched)
        distances = 1.0 - dots[candidates]
        return [int(candidates[i]) for i in np.lexsort((candidates, distances))[:limit]]


def dense_truth(vectors: np.ndarray, query: np.ndarray, limit: int) -> list[int]:
    distances = 1.0 - vectors @ query  # unit vectors: cosine distance
    top = np.argpartition(distances, limit)[:limit]
    return [int(i) for i in top[np.lexsort((top, distances[top]))]]


def rrf_truth(dense: list[int], sparse: list[int], limit: int, k: int = 60) -> list[int]:
    """RRF with return_rank and default=limit for a record missing from a list (ties in
    insertion order, i.e. by row)."""
    ranks_dense = {r: i for i, r in enumerate(dense)}
    ranks_sparse = {r: i for i, r in enumerate(sparse)}
    scores = {
        r: -(1 / (k + ranks_dense.get(r, limit)) + 1 / (k + ranks_sparse.get(r, limit)))
        for r in set(dense) | set(sparse)
    }
    return sorted(scores, key=lambda r: (scores[r], r))[:10]


def ingest(collection: Collection, vectors: np.ndarray, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        stop = min(start + batch, len(texts))
        collection.add(
            ids=[str(i) for i in range(start, stop)],
            embeddings=vectors[start:stop],
            documents=texts[start:stop],
        )
    return time.perf_counter() - started


def timed(
    collection: Collection, searches: list[Any], warmup: int
) -> tuple[list[Any], list[float]]:
    results, latencies = [], []
    for i, search in enumerate(searches):
        started = time.perf_counter()
        found = collection.search(search)
        if i >= warmup:
            latencies.append(time.perf_counter() - started)
        results.append([int(x) for x in found["ids"][0]])
    return results, latencies


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--limit", type=int, default=100, help="each knn's candidates")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)

    import synthetic
    from chromadb import (
        K,
        Knn,
        Rrf,
        Schema,
        Search,
        SparseVectorIndexConfig,
        VectorIndexConfig,
    )
    from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction

    memoize_stemmer()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    data = synthetic.load("lowrank", args.rows, num_queries=args.queries + args.warmup)
    words = vocabulary(rng)
    texts = documents(args.rows, words, rng)
    bm25 = ChromaBm25EmbeddingFunction()
    t0 = time.perf_counter()
    truth_index = Bm25Truth(bm25(texts))
    print(f"data and BM25 ground truth index in {time.perf_counter() - t0:.0f} s", flush=True)
    query_texts = []
    for _ in range(args.queries + args.warmup):
        source = texts[int(rng.integers(args.rows))].split()
        picked = [source[int(i)] for i in rng.integers(len(source), size=3)]
        query_texts.append(" ".join([*picked, words[int(rng.integers(VOCABULARY))]]))
    sparse_queries = bm25.embed_query(query_texts)

    env = dict(os.environ)
    env.pop("CHROMA_SERVERLESS_PATH", None)
    env["CHROMA_SERVERLESS_MAINTENANCE"] = "off"  # the maintain step below builds the indexes
    workdir = Path(tempfile.mkdtemp(prefix="hybrid-", dir=args.workdir))
    server = Server("ours", workdir / "data", workdir / "server.log", env)
    out: dict[str, Any] = {}
    try:
        with running(server):
            server.wait_ready()
            client = server.client()
            schema = (
                Schema()
                .create_index(config=VectorIndexConfig(space="cosine"))
                .create_index(
                    config=SparseVectorIndexConfig(
                        source_key=K.DOCUMENT, embedding_function=bm25, bm25=True
                    ),
                    key=KEY,
                )
            )
            collection = client.create_collection("hybrid", schema=schema, embedding_function=None)
            out["ingest_s"] = ingest(collection, data.vectors, texts, args.batch)
            print(f"ingest {out['ingest_s']:.0f} s", flush=True)
        out.update(maintain(server))
        print(f"maintain {out['maintain_wall_s']:.0f} s", flush=True)
        with running(server):
            server.wait_ready()
            collection = server.client().get_collection("hybrid")
            searches: dict[str, list[Any]] = {"hybrid": [], "dense": [], "bm25": []}
            truths: dict[str, list[list[int]]] = {"hybrid": [], "dense": [], "bm25": []}
            for query, sparse in zip(data.queries, sparse_queries, strict=True):
                dense_knn = Knn(query=query, limit=args.limit, return_rank=True, default=args.limit)
                sparse_knn = Knn(
                    query=sparse, key=KEY, limit=args.limit, return_rank=True, default=args.limit
                )
                searches["hybrid"].append(Search().rank(Rrf([dense_knn, sparse_knn])).limit(10))
                searches["dense"].append(Search().rank(Knn(query=query, limit=10)).limit(10))
                searches["bm25"].append(
                    Search().rank(Knn(query=sparse, key=KEY, limit=10)).limit(10)
                )
                dense_ids = dense_truth(data.vectors, query, args.limit)
                sparse_ids = truth_index.nearest(sparse, args.limit)
                truths["hybrid"].append(rrf_truth(dense_ids, sparse_ids, args.limit))
                truths["dense"].append(dense_ids[:10])
                truths["bm25"].append(sparse_ids[:10])
            for name, batch in searches.items():
                found, latencies = timed(collection, batch, args.warmup)
                out.update(ms_percentiles(latencies, name))
                out[f"{name}_recall_at_10"] = recall(
                    found[args.warmup :], truths[name][args.warmup :]
                )
                print(
                    f"{name}: p50 {out[f'{name}_p50_ms']:.1f} ms, p99 {out[f'{name}_p99_ms']:.1f}"
                    f" ms, recall@10 {out[f'{name}_recall_at_10']:.3f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": args.rows,
        "queries": args.queries,
        "warmup": args.warmup,
        "knn_limit": args.limit,
        "dataset": "lowrank 384-d, cosine; 40-80 words/doc, Zipf(1.1) over 20k words",
        "versions": {p: version(p) for p in ("chromadb", "chroma-serverless", "lancedb")},
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "load_average": os.getloadavg(),
        "total_s": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": out}, indent=2) + "\n")
    print(f"wrote {args.out} ({meta['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
