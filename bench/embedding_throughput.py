"""Embedding throughput: documents/second of the server-side default embedding function.

    python bench/embedding_throughput.py [--docs N] [--repeats R] [--model-dir DIR]

Embeds synthetic short (~20 tokens) and long (~200 tokens) documents in batches of 32, both
with Chroma's exact pipeline (every text padded to 256 tokens) and with pad-to-longest
(``fixed_length=False``), after one warm-up batch. Prints a table and writes
``bench/results/embedding_throughput.json``. Needs the built model
(``python -m chroma_serverless.embedding.build``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from chroma_serverless.embedding.model import (
    BATCH_SIZE,
    DefaultEmbeddingFunction,
    ModelUnavailableError,
    model_dir,
)

RESULTS = Path(__file__).parent / "results" / "embedding_throughput.json"

_WORDS = (
    "vector database query index latency storage serverless function request cache record "
    "metadata embedding search nearest neighbour distance cosine collection tenant document "
    "cloud region bucket object table lambda cold start memory throughput batch model token "
    "the a of to and in is for on with that by from at as be this are was it an or"
).split()


def _documents(count: int, words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "." for _ in range(count)
    ]


def _measure(
    fn: DefaultEmbeddingFunction, docs: list[str], repeats: int
) -> tuple[float, list[float]]:
    fn(docs[:BATCH_SIZE])  # warm-up: loads the session, first-run allocations
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn(docs)
        times.append(time.perf_counter() - started)
        assert out.shape == (len(docs), fn.dimension)
    return len(docs) / statistics.median(times), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=256, help="documents per kind (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, median reported")
    parser.add_argument("--model-dir", type=Path, default=None, help=f"default {model_dir()}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    directory = args.model_dir if args.model_dir is not None else model_dir()
    exact = DefaultEmbeddingFunction(directory)
    try:
        exact.load()
    except ModelUnavailableError as exc:
        print(exc, file=sys.stderr)
        return 2
    fast = DefaultEmbeddingFunction(directory, fixed_length=False)

    kinds = {"short": _documents(args.docs, 16, 1), "long": _documents(args.docs, 190, 2)}
    results: list[dict[str, Any]] = []
    print(f"{'documents':<10}{'tokens':>8}{'padding':>16}{'docs/s':>10}{'ms/doc':>9}")
    for kind, docs in kinds.items():
        _, mask = exact.tokenize(docs)
        tokens = float(mask.sum(axis=1).mean())
        for label, fn in (("256 (chroma)", exact), ("longest", fast)):
            rate, times = _measure(fn, docs, args.repeats)
            results.append(
                {
                    "documents": kind,
                    "count": len(docs),
                    "mean_tokens": round(tokens, 1),
                    "padding": label,
                    "docs_per_second": round(rate, 2),
                    "seconds": [round(t, 3) for t in times],
                }
            )
            print(f"{kind:<10}{tokens:>8.1f}{label:>16}{rate:>10.1f}{1000 / rate:>9.1f}")

    report = {
        "benchmark": "embedding_throughput",
        "model": "all-MiniLM-L6-v2 (ONNX, CPUExecutionProvider)",
        "batch_size": BATCH_SIZE,
        "repeats": args.repeats,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "onnxruntime": version("onnxruntime"),
            "tokenizers": version("tokenizers"),
            "numpy": version("numpy"),
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
