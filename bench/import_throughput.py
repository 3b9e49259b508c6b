"""Import throughput: ``chroma-serverless import`` of a local Parquet file with embeddings supplied,
straight into the embedded store.

    python bench/import_throughput.py [--rows 1000000] [--dim 384] [--batch-size 20000] \\
        [--maintain] [--out bench/results/import_throughput.json]

1. writes (once; cached in ``bench/results/cache/``) a Parquet file of ``--rows`` records: an id,
   a unit-norm float32 embedding of ``--dim`` dimensions, a document and three typed metadata
   columns (int, str, float);
2. runs the real command, ``python -m chroma_serverless.cli import FILE --collection bench
   --path TMP --no-maintain``, in a subprocess on a fresh data directory;
3. reports the command's own figure (records/s over its import loop, from its JSON report) and
   the wall clock of the whole process (start-up, catalog, checkpoint and all);
4. with ``--maintain``, then times ``chroma-serverless maintain`` (IVF-PQ index, scalar indexes,
   compaction) and measures the data directory after it, with the files compaction replaced
   (kept for the retention window) and without them (a maintenance run with a window of 0).

Writes ``--out`` (JSON). Wall-clock figures depend on the machine's load (see ``load_average``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ROW_GROUP = 65_536


def dataset(rows: int, dim: int) -> Path:
    path = RESULTS / "cache" / f"import_{rows}x{dim}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    partial = path.with_suffix(".tmp")
    writer = None
    for start in range(0, rows, ROW_GROUP):
        n = min(ROW_GROUP, rows - start)
        vectors = rng.standard_normal((n, dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = np.arange(start, start + n)
        table = pa.table(
            {
                "id": pa.array([f"doc-{i}" for i in ids]),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
                "document": pa.array([f"document number {i}" for i in ids]),
                "year": pa.array(1950 + ids % 75),
                "lang": pa.array(np.array(["en", "de", "fr", "ja"])[ids % 4]),
                "score": pa.array(rng.random(n)),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(partial, table.schema, compression="snappy")
        writer.write_table(table, row_group_size=ROW_GROUP)
    assert writer is not None
    writer.close()
    partial.rename(path)
    return path


def cli(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "common"), **settings}
    command = [sys.executable, "-m", "chroma_serverless.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True)


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--maintain", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "import_throughput.json")
    args = parser.parse_args()

    source = dataset(args.rows, args.dim)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average_before": os.getloadavg(),
        "rows": args.rows,
        "dim": args.dim,
        "batch_size": args.batch_size,
        "source_mb": round(source.stat().st_size / 2**20, 1),
    }
    with tempfile.TemporaryDirectory(prefix="import-bench-") as work:
        data, state = Path(work) / "data", Path(work) / "state"
        started = time.perf_counter()
        done = cli(
            "import", str(source), "--collection", "bench", "--path", str(data),
            "--state-dir", str(state), "--batch-size", str(args.batch_size), "--no-maintain",
        )  # fmt: skip
        wall = time.perf_counter() - started
        report = json.loads(done.stdout.splitlines()[-1])
        assert report["records"] == args.rows, report
        result["import"] = {
            "records_per_second": round(report["records_per_second"]),
            "loop_seconds": round(report["seconds"], 2),
            "process_seconds": round(wall, 2),
            "records_per_second_process": round(args.rows / wall),
            "data_mb": round(size_mb(data), 1),
        }
        if args.maintain:
            started = time.perf_counter()
            cli("maintain", "--path", str(data))
            result["maintain"] = {
                "seconds": round(time.perf_counter() - started, 2),
                "data_mb_with_replaced_files": round(size_mb(data), 1),
            }
            # What the retention window keeps: the size once replaced versions are removed.
            cli(
                "maintain", "--path", str(data),
                CHROMA_SERVERLESS_INDEX_RETENTION_SECONDS="0",
                CHROMA_SERVERLESS_INDEX_FRAGMENT_TARGET="0",
            )  # fmt: skip
            result["maintain"]["data_mb_without_replaced_files"] = round(size_mb(data), 1)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
