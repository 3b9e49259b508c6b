"""Everyday operations on a small collection, ours vs Chroma's server, through the official client.

    python bench/small_ops.py [--records 1000] [--rounds 200] [--servers ours,chroma] \\
        [--out bench/results/small_ops.json]

For each server in turn (ours: ``chroma-serverless run``, embedded default with its background
maintainer on; Chroma's: ``chroma run``), on a fresh temp dir and a free port:

1. one collection of ``--records`` records (384-d, metadata ``{"k": int 0..9, "s": str}``,
   a document each), added in one batch;
2. ``--rounds`` rounds, each running every operation once in turn (add 10 records, get by id,
   get with a filter limit 20, query n_results 10, query with a filter, a get of 100 records and
   a query of 100 results with their embeddings, documents and metadata, update one record's
   metadata, count) → p50/p99 per operation;
3. fragmentation: a second collection built from ``--records`` adds of one record each, against
   a third built with one add of the same records; a filtered get and a query are timed on both
   right after the writes (p50 over ``--reads``) → the ratio small-writes / one-write.

Prints a table (ours, Chroma's, ratio) and writes ``--out`` (JSON). One server runs at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import Server, running  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from chromadb.api.models.Collection import Collection

RESULTS = Path(__file__).resolve().parent / "results" / "small_ops.json"
DIM = 384
EVERYTHING: list[Any] = ["embeddings", "documents", "metadatas"]


def vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    data = rng.standard_normal((n, DIM)).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def fill(collection: Collection, rng: np.random.Generator, n: int, batch: int) -> None:
    for start in range(0, n, batch):
        ids = range(start, min(start + batch, n))
        collection.add(
            ids=[f"r{i}" for i in ids],
            embeddings=vectors(rng, len(ids)),
            metadatas=[{"k": i % 10, "s": f"v{i % 7}"} for i in ids],
            documents=[f"document number {i}" for i in ids],
        )


def operations(
    collection: Collection, rng: np.random.Generator, records: int
) -> dict[str, Callable[[], Any]]:
    added = iter(range(10**9))

    def add() -> Any:
        batch = [f"new{next(added)}" for _ in range(10)]
        return collection.add(ids=batch, embeddings=vectors(rng, 10))

    def record() -> str:
        return f"r{rng.integers(records)}"

    return {
        "add 10 records": add,
        "get by id": lambda: collection.get(ids=[record()]),
        "get with a filter, limit 20": lambda: collection.get(where={"k": 3}, limit=20),
        "query, n_results 10": lambda: collection.query(
            query_embeddings=vectors(rng, 1), n_results=10
        ),
        "query with a filter": lambda: collection.query(
            query_embeddings=vectors(rng, 1), n_results=10, where={"k": 3}
        ),
        "get 100 with everything": lambda: collection.get(
            limit=100, offset=int(rng.integers(records - 100)), include=EVERYTHING
        ),
        "query, n_results 100, everything": lambda: collection.query(
            query_embeddings=vectors(rng, 1), n_results=100, include=[*EVERYTHING, "distances"]
        ),
        "update one record's metadata": lambda: collection.update(
            ids=[record()], metadatas=[{"k": int(rng.integers(10)), "u": 1}]
        ),
        "count": collection.count,
    }


def p50_p99(samples: list[float]) -> dict[str, float]:
    p50, p99 = np.percentile(np.asarray(samples) * 1000.0, [50, 99])
    return {"p50_ms": round(float(p50), 2), "p99_ms": round(float(p99), 2)}


def timed(call: Callable[[], Any], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    server.wait_ready()
    client = server.client()
    rng = np.random.default_rng(7)
    collection = client.create_collection("small", configuration={"hnsw": {"space": "l2"}})
    fill(collection, rng, args.records, batch=args.records)
    ops = operations(collection, rng, args.records)
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(args.rounds):
        for name, op in ops.items():
            samples[name] += timed(op, 1)
    result: dict[str, Any] = {name: p50_p99(s) for name, s in samples.items()}

    reads: dict[str, dict[str, float]] = {}
    for layout, batch in (("one write", args.records), ("small writes", 1)):
        target = client.create_collection(f"frag-{batch}")
        fill(target, np.random.default_rng(11), args.records, batch=batch)
        query = vectors(rng, 1)
        reads[layout] = {
            "filtered get p50_ms": p50_p99(
                timed(lambda t=target: t.get(where={"k": 3}, limit=20), args.reads)
            )["p50_ms"],
            "query p50_ms": p50_p99(
                timed(lambda t=target, q=query: t.query(query_embeddings=q), args.reads)
            )["p50_ms"],
        }
    result["fragmentation"] = {
        **reads,
        "ratio": {
            key: round(reads["small writes"][key] / reads["one write"][key], 2)
            for key in reads["one write"]
        },
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--servers", default="ours,chroma")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.servers.split(","):
            data = Path(tmp) / kind
            server = Server(kind, data, Path(tmp) / f"{kind}.log", env=dict(os.environ))
            with running(server):
                results[kind] = run(server, args)

    names = [n for n in results[next(iter(results))] if n != "fragmentation"]
    print(f"{'operation':32s}" + "".join(f"{k:>12s}" for k in results) + "       ratio")
    for name in names:
        values = [results[k][name]["p50_ms"] for k in results]
        ratio = f"{values[0] / values[1]:10.2f}x" if len(values) == 2 else ""
        print(f"{name:32s}" + "".join(f"{v:10.2f}ms" for v in values) + ratio)
    for kind, result in results.items():
        ratio = result["fragmentation"]["ratio"]
        print(f"{kind}: reads after small writes / after one write: {ratio}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "chromadb": version("chromadb"),
                "args": {k: str(v) for k, v in vars(args).items()},
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
