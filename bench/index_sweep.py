"""IVF index sweep: build time, size, recall@10 and warm query latency on LanceDB.

    python bench/index_sweep.py --dataset lowrank --rows 100000 \\
        [--index ivf_pq ivf_sq] [--partitions 316 24] [--sub-vectors 48 96] [--num-bits 8] \\
        [--sample-rate 256] [--max-iterations 50] \\
        [--nprobes 10 20 40 64] [--refine 0 2 5 10] [--queries 200] [--out FILE]
    python bench/index_sweep.py --report 0.95   # summarise the JSON, run nothing

Writes a local LanceDB table (``id`` string, ``embedding`` fixed_size_list<float32>[384]) of a
synthetic dataset from ``bench/synthetic.py`` in a temp dir, then for every build configuration
creates the index (replacing the previous one) and for every query configuration measures
recall@10 against exact cosine search (mean over held-out queries) and single-query latency
(median and p99 of a second, warm pass; local disk). ``--partitions 0`` means lance's default
(``n / target_partition_size``). ``--refine 0`` means no refine. Prints a table and merges the
rows into ``bench/results/index_sweep.json`` (rows with the same dataset, size, build and query
configuration are replaced).

On S3, ``refine_factor r`` costs about ``k * r`` extra ranged GETs per query (one per candidate
row, ``shared/docs/lancedb-facts.md`` section 4); the table reports that as ``s3_gets``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lancedb
import pyarrow as pa
from lancedb.index import IvfPq, IvfSq

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import DIM, NAMES, ground_truth, iter_blocks, recall_at_k  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    from lancedb.table import Table
    from synthetic import DatasetName

RESULTS = Path(__file__).parent / "results" / "index_sweep.json"
K = 10
COLUMN = "embedding"
SCHEMA = pa.schema(
    [pa.field("id", pa.string(), nullable=False), pa.field(COLUMN, pa.list_(pa.float32(), DIM))]
)


@dataclass(frozen=True)
class Build:
    """One index build configuration."""

    index: str  # "ivf_pq" or "ivf_sq"
    num_partitions: int  # 0 = lance's default
    num_sub_vectors: int  # 0 for IvfSq
    num_bits: int = 8
    sample_rate: int = 256
    max_iterations: int = 50

    def label(self) -> str:
        parts = "default" if self.num_partitions == 0 else str(self.num_partitions)
        if self.index == "ivf_sq":
            text = f"IvfSq p={parts}"
        else:
            text = f"IvfPq p={parts} m={self.num_sub_vectors}"
            if self.num_bits != 8:
                text += f" bits={self.num_bits}"
        if self.sample_rate != 256:
            text += f" sr={self.sample_rate}"
        if self.max_iterations != 50:
            text += f" it={self.max_iterations}"
        return text

    def config(self) -> IvfPq | IvfSq:
        common: dict[str, Any] = {
            "distance_type": "cosine",
            "num_partitions": self.num_partitions or None,
            "sample_rate": self.sample_rate,
            "max_iterations": self.max_iterations,
        }
        if self.index == "ivf_sq":
            return IvfSq(**common)
        return IvfPq(num_sub_vectors=self.num_sub_vectors, num_bits=self.num_bits, **common)


def _batches(name: DatasetName, rows: int, seed: int) -> Iterator[pa.RecordBatch]:
    start = 0
    for block in iter_blocks(name, rows, seed):
        ids = pa.array([str(i) for i in range(start, start + len(block))], pa.string())
        vecs = pa.FixedSizeListArray.from_arrays(pa.array(block.ravel(), pa.float32()), DIM)
        start += len(block)
        yield pa.RecordBatch.from_arrays([ids, vecs], schema=SCHEMA)


def build_table(path: str, name: DatasetName, rows: int, seed: int) -> tuple[Table, float]:
    """Write the dataset into a new local table, block by block; return it and the seconds."""
    started = time.perf_counter()
    db = lancedb.connect(path)
    reader = pa.RecordBatchReader.from_batches(SCHEMA, _batches(name, rows, seed))
    table = db.create_table("vectors", data=reader, schema=SCHEMA, mode="overwrite")
    return table, time.perf_counter() - started


def _search(table: Table, q: np.ndarray, nprobes: int, refine: int) -> list[int]:
    query = (
        table.search(q, vector_column_name=COLUMN)
        .distance_type("cosine")
        .nprobes(nprobes)
        .limit(K)
        .select(["id", "_distance"])
    )
    if refine:
        query = query.refine_factor(refine)
    return [int(i) for i in query.to_arrow().column("id").to_pylist()]


def measure(
    table: Table, queries: np.ndarray, truth: np.ndarray, nprobes: int, refine: int
) -> dict[str, float]:
    """Recall@K from a first pass, median/p99 latency from a second (warm) pass."""
    found = [_search(table, q, nprobes, refine) for q in queries]
    latencies = []
    for q in queries:
        started = time.perf_counter()
        _search(table, q, nprobes, refine)
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {
        "recall": recall_at_k(found, truth),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)],
    }


def sweep_build(
    table: Table, build: Build, args: argparse.Namespace, queries: np.ndarray, truth: np.ndarray
) -> list[dict[str, Any]]:
    started, cpu_started = time.perf_counter(), time.process_time()
    table.create_index(COLUMN, config=build.config(), replace=True)
    build_s = time.perf_counter() - started
    build_cpu_s = time.process_time() - cpu_started
    (info,) = [i for i in table.list_indices() if i.name == f"{COLUMN}_idx"]
    stats = table.index_stats(f"{COLUMN}_idx")
    size_mb = (info.size_bytes or 0) / 1e6
    print(
        f"\n{build.label()}: built in {build_s:.1f} s ({build_cpu_s:.1f} s CPU), {size_mb:.1f} MB",
        flush=True,
    )
    header = ("nprobes", "refine", "recall", "p50 ms", "p99 ms", "s3_gets")
    print("  " + " ".join(f"{h:>7}" for h in header))
    for q in queries[:20]:  # warm the index cache
        _search(table, q, 1, 0)
    rows = []
    for nprobes in args.nprobes:
        for refine in args.refine:
            m = measure(table, queries, truth, nprobes, refine)
            row = {
                "dataset": args.dataset,
                "rows": args.rows,
                "label": build.label(),
                **asdict(build),
                "build_s": round(build_s, 2),
                "build_cpu_s": round(build_cpu_s, 2),
                "index_mb": round(size_mb, 2),
                "num_indexed_rows": stats.num_indexed_rows if stats else None,
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "nprobes": nprobes,
                "refine_factor": refine,
                "recall": round(m["recall"], 4),
                "p50_ms": round(m["p50_ms"], 2),
                "p99_ms": round(m["p99_ms"], 2),
                "s3_refine_gets": K * refine,
            }
            rows.append(row)
            print(
                f"  {nprobes:>7} {refine or '-':>6} {m['recall']:>7.3f} {m['p50_ms']:>7.2f}"
                f" {m['p99_ms']:>7.2f} {K * refine:>7}",
                flush=True,
            )
    return rows


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["dataset"], row["rows"], row["label"], row["nprobes"], row["refine_factor"])


def save(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Merge rows into the JSON file, replacing rows with the same key."""
    existing: dict[str, Any] = {"runs": [], "results": []}
    if path.exists():
        existing = json.loads(path.read_text())
    new_keys = {_key(r) for r in rows}
    kept = [r for r in existing["results"] if _key(r) not in new_keys]
    existing["results"] = kept + rows
    existing["runs"].append(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(existing, indent=1) + "\n")


def report(path: Path, target: float) -> None:
    """Per dataset and build, the fastest query setting reaching ``target`` recall, if any."""
    results = json.loads(path.read_text())["results"]
    print(f"fastest query setting with recall@{K} >= {target} (p50 of warm single queries)")
    header = f"{'dataset':<9} {'rows':>7} {'build':<34} {'build s':>7} {'cpu s':>6} {'MB':>5}"
    print(header + f" {'nprobes':>7} {'refine':>6} {'recall':>6} {'p50 ms':>6} {'S3 GETs':>7}")
    builds: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in results:
        builds.setdefault((r["dataset"], r["rows"], r["label"]), []).append(r)
    for (dataset, rows, label), rs in sorted(builds.items()):
        ok = [r for r in rs if r["recall"] >= target]
        best = min(ok, key=lambda r: r["p50_ms"]) if ok else max(rs, key=lambda r: r["recall"])
        cpu = best.get("build_cpu_s")
        print(
            f"{dataset:<9} {rows:>7} {label:<34} {best['build_s']:>7.1f}"
            f" {cpu if cpu is not None else float('nan'):>6.1f} {best['index_mb']:>5.1f}"
            f" {best['nprobes']:>7} {best['refine_factor'] or '-':>6} {best['recall']:>6.3f}"
            f" {best['p50_ms']:>6.2f} {best['s3_refine_gets']:>7}" + ("" if ok else "  (best)")
        )


def _builds(args: argparse.Namespace) -> list[Build]:
    partitions = args.partitions or [round(math.sqrt(args.rows)), max(1, args.rows // 4096)]
    builds = []
    for index in args.index:
        for p in partitions:
            extra = {
                "sample_rate": args.sample_rate,
                "max_iterations": args.max_iterations,
            }
            if index == "ivf_sq":
                builds.append(Build(index, p, 0, **extra))
                continue
            for m in args.sub_vectors:
                for bits in args.num_bits:
                    builds.append(Build(index, p, m, num_bits=bits, **extra))
    return builds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=NAMES, default="lowrank")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", nargs="+", choices=["ivf_pq", "ivf_sq"], default=["ivf_pq"])
    parser.add_argument("--partitions", nargs="+", type=int, help="default: sqrt(n), n/4096")
    parser.add_argument("--sub-vectors", nargs="+", type=int, default=[48, 96])
    parser.add_argument("--num-bits", nargs="+", type=int, default=[8])
    parser.add_argument("--sample-rate", type=int, default=256)
    parser.add_argument("--max-iterations", type=int, default=50)
    parser.add_argument("--nprobes", nargs="+", type=int, default=[10, 20, 40, 64])
    parser.add_argument("--refine", nargs="+", type=int, default=[0, 2, 5, 10])
    parser.add_argument("--workdir", help="where to put the table (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--report", type=float, metavar="RECALL", help="only summarise --out for this target"
    )
    args = parser.parse_args()
    if args.report is not None:
        report(args.out, args.report)
        return

    started = time.perf_counter()
    queries, truth = ground_truth(args.dataset, args.rows, args.queries, K, args.seed)
    truth_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="index_sweep_") as tmp:
        table, write_s = build_table(tmp, args.dataset, args.rows, args.seed)
        print(f"{args.dataset} {args.rows} x {DIM}: truth {truth_s:.1f} s, write {write_s:.1f} s")
        rows: list[dict[str, Any]] = []
        for build in _builds(args):
            rows += sweep_build(table, build, args, queries, truth)
    meta = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "dataset": args.dataset,
        "rows": args.rows,
        "table_write_s": round(write_s, 2),
        "total_s": round(time.perf_counter() - started, 1),
        "lancedb": version("lancedb"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.python_version()}",
    }
    save(args.out, rows, meta)
    print(f"\ntotal {meta['total_s']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
