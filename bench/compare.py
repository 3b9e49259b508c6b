"""Head to head: chroma-serverless vs Chroma's own server, same workload, same official client.

    python bench/compare.py [--rows 100000] [--queries 200] [--datasets clustered,lowrank] \\
        [--threads 4] [--duration 30] [--out bench/results/compare.json]

For every dataset (``bench/synthetic.py``: 384-d, unit norm, cosine) and each server in turn
(ours: ``chroma-serverless run``, embedded default; Chroma's: ``chroma run``), on a fresh temp data
dir and a free port, through ``chromadb.HttpClient`` only:

1. ingest ``--rows`` records in client batches of ``--batch`` (ids, embeddings, metadata
   ``{"category": int 0..9, "score": float [0, 1), "tag": str}``) → records/second;
2. stop the server; ours: run ``chroma-serverless maintain --path DIR`` (index build time:
   wall time minus that of a no-op ``maintain``, i.e. without process start; Chroma indexes
   during ingest, so it has none; ``ingest + index build`` puts both on one footing); data dir
   size on disk (ours keeps pre-compaction versions for ``retention_seconds``, 600 s);
3. start the server again on the same dir and time process start → first answered query
   (``ready_s``: first heartbeat; ``cold_start_s``: client constructed, collection fetched and
   one query answered);
4. settle: one query every 0.25 s until ours logs its graph built (at most ``--warmup`` s;
   ``settled_s`` is the time from the start), then 10 warm-up queries; single-client query
   latency p50/p99 (``n_results=10``, ``include=["metadatas", "distances"]``) and recall@10
   against exact ground truth;
5. the same with ``where={"category": 3}`` (~10% of rows) against exact filtered ground truth;
6. ``get`` with ``where={"$and": [{"score": {"$gte": a}}, {"score": {"$lt": a + 0.01}}]}``
   (~1% of rows), ``limit=100``: latency, and whether the answer has the right size and rows;
7. ``--threads`` threads, each with its own HttpClient, querying for ``--duration`` s → q/s.

Prints a table (ours, Chroma's, ratio ours/Chroma) and writes ``--out`` (JSON) and a PNG chart
beside it. Only one server runs at a time; both are stopped in ``finally``. Servers keep their
defaults (``CHROMA_SERVERLESS_*`` variables in the environment are passed through and recorded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
RESULTS = BENCH / "results" / "compare.json"
SERVERS = ("ours", "chroma")
K = 10
FILTER_CATEGORY = 3
FILTER_BAND = 9  # the top decile along a fixed direction: a filter correlated with the vectors
RANGE_WIDTH = 0.01
RANGE_LIMIT = 100
WARMUP = 10
SETTLE_INTERVAL_S = 0.25
REQUEST_TIMEOUT_S = 300.0
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
MAINTAIN_TIMEOUT_S = 3600.0
SPACE = {"hnsw": {"space": "cosine"}}
INCLUDE_QUERY: list[Any] = ["metadatas", "distances"]
INCLUDE_GET: list[Any] = ["metadatas"]

# name, label, unit, higher is better
METRICS: list[tuple[str, str, str, bool]] = [
    ("ingest_rps", "ingest", "rec/s", True),
    ("index_build_s", "index build", "s", False),
    ("ingest_indexed_rps", "ingest + index build", "rec/s", True),
    ("disk_mb", "data dir size", "MB", False),
    ("fresh_p50_ms", "query p50 after ingest", "ms", False),
    ("fresh_recall_at_10", "recall after ingest", "", True),
    ("ready_s", "start → heartbeat", "s", False),
    ("cold_start_s", "start → 1st query", "s", False),
    ("settled_s", "start → graph ready", "s", False),
    ("query_p50_ms", "query p50", "ms", False),
    ("query_p99_ms", "query p99", "ms", False),
    ("recall_at_10", "recall@10", "", True),
    ("filtered_p50_ms", "filtered query p50", "ms", False),
    ("filtered_p99_ms", "filtered query p99", "ms", False),
    ("filtered_recall_at_10", "filtered recall@10", "", True),
    ("banded_p50_ms", "correlated filter p50", "ms", False),
    ("banded_p99_ms", "correlated filter p99", "ms", False),
    ("banded_recall_at_10", "correlated recall@10", "", True),
    ("get_range_p50_ms", "range get p50", "ms", False),
    ("get_range_p99_ms", "range get p99", "ms", False),
    ("get_range_correct", "range get correct", "", True),
    ("throughput_qps", "N-client query", "q/s", True),
    ("rss_mb", "server RSS at end", "MB", False),
]


# ---------------------------------------------------------------------------- data


@dataclass
class Workload:
    """One dataset plus everything the workload needs: metadata, query sets, ground truth."""

    name: str
    vectors: np.ndarray  # float32 (n, d)
    queries: np.ndarray  # float32 (q, d)
    truth: np.ndarray  # int64 (q, K)
    category: np.ndarray  # int64 (n,)
    score: np.ndarray  # float64 (n,)
    filtered_truth: np.ndarray  # int64 (q, K), rows with category == FILTER_CATEGORY
    band: np.ndarray  # int64 (n,): decile of the projection on a fixed direction
    banded_truth: np.ndarray  # int64 (q, K), rows with band == FILTER_BAND
    ranges: np.ndarray  # float64 (q,), lower bounds of the score ranges
    range_expected: np.ndarray  # int64 (q,), rows in each range

    @property
    def rows(self) -> int:
        return len(self.vectors)

    def metadatas(self, start: int, stop: int) -> list[dict[str, Any]]:
        return [
            {
                "category": int(self.category[i]),
                "band": int(self.band[i]),
                "score": float(self.score[i]),
                "tag": f"t{i % 100:02d}",
            }
            for i in range(start, stop)
        ]


def build_workload(ds_module: ModuleType, name: str, rows: int, num_queries: int) -> Workload:
    ds = ds_module.load(name, rows, num_queries, K)
    rng = np.random.default_rng([20260, rows])
    category = rng.integers(0, 10, size=rows)
    score = rng.random(rows)
    direction = np.random.default_rng([20262, rows]).standard_normal(ds.vectors.shape[1])
    projection = ds.vectors @ direction
    band = np.searchsorted(np.quantile(projection, np.linspace(0.1, 0.9, 9)), projection)
    ranges = np.random.default_rng([20261, rows]).uniform(0.0, 1.0 - RANGE_WIDTH, num_queries)
    ordered = np.sort(score)
    lo = np.searchsorted(ordered, ranges, side="left")
    hi = np.searchsorted(ordered, ranges + RANGE_WIDTH, side="left")
    return Workload(
        name=name,
        vectors=ds.vectors,
        queries=ds.queries,
        truth=ds.truth,
        category=category,
        score=score,
        filtered_truth=_filtered_truth(ds, category == FILTER_CATEGORY),
        band=band.astype(np.int64),
        banded_truth=_filtered_truth(ds, band == FILTER_BAND),
        ranges=ranges,
        range_expected=(hi - lo).astype(np.int64),
    )


def _filtered_truth(ds: Any, selected: np.ndarray) -> np.ndarray:
    """Exact top-K (cosine) among the selected rows, per query."""
    rows = np.flatnonzero(selected)
    sims = ds.queries @ ds.vectors[rows].T
    top = np.argsort(-sims, axis=1, kind="stable")[:, : min(K, len(rows))]
    return rows[top]


def recall(found: list[list[str]], truth: np.ndarray) -> float:
    hits = [
        len({int(i) for i in f[:K]} & set(t.tolist())) / max(1, len(t))
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits))


# ---------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One server process (ours or Chroma's) on a data dir; the log goes to ``log``."""

    kind: str
    data: Path
    log: Path
    env: dict[str, str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    log_offset: int = 0

    def command(self) -> list[str]:
        if self.kind == "ours":
            exe = str(BIN / "chroma-serverless")
            return [exe, "run", "--path", str(self.data), "--port", str(self.port)]
        exe = str(BIN / "chroma")
        return [
            exe,
            "run",
            "--path",
            str(self.data),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    def start(self) -> None:
        """Start the process and return at once (``started_at`` is just before the spawn)."""
        self.port = free_port()
        with self.log.open("ab") as log:
            log.write(f"\n=== {datetime.now(UTC).isoformat()} {self.command()}\n".encode())
            log.flush()
            self.log_offset = log.tell()
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,  # its own process group, so stop() reaches children
            )

    def rss_mb(self) -> float | None:
        """Resident memory of the server's process group (it and any children), in MB."""
        if self.proc is None:
            return None
        ps = subprocess.run(
            ["ps", "-o", "rss=", "-g", str(self.proc.pid)], capture_output=True, text=True
        )
        return sum(int(kb) for kb in ps.stdout.split()) / 1024

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v2"

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> float:
        """Poll the heartbeat until it answers; seconds since the spawn."""
        deadline = time.perf_counter() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} server exited with {self.proc.returncode}; "
                    f"log tail:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/heartbeat", timeout=2.0).status_code == 200:
                    return time.perf_counter() - self.started_at
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{self.kind} server not ready after {timeout:.0f} s")
            time.sleep(0.01)

    def client(self) -> ClientAPI:
        import chromadb
        from chromadb.config import Settings

        client = chromadb.HttpClient(
            host="127.0.0.1", port=self.port, settings=Settings(anonymized_telemetry=False)
        )
        # The client's httpx session has no timeout; a hung server must not hang the run.
        session = getattr(getattr(client, "_server", None), "_session", None)
        if isinstance(session, httpx.Client):
            session.timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
        return client

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)

    def log_since_start(self) -> str:
        """What the server logged since it was last started."""
        with self.log.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- workload


def ms_percentiles(latencies: list[float], prefix: str) -> dict[str, float]:
    p50, p99 = np.percentile(np.asarray(latencies) * 1000.0, [50, 99])
    return {f"{prefix}_p50_ms": float(p50), f"{prefix}_p99_ms": float(p99)}


def ingest(collection: Collection, wl: Workload, batch: int) -> dict[str, float]:
    started = time.perf_counter()
    for start in range(0, wl.rows, batch):
        stop = min(start + batch, wl.rows)
        collection.add(
            ids=[str(i) for i in range(start, stop)],
            embeddings=wl.vectors[start:stop],
            metadatas=wl.metadatas(start, stop),  # type: ignore[arg-type]
        )
    elapsed = time.perf_counter() - started
    return {"ingest_s": elapsed, "ingest_rps": wl.rows / elapsed}


def timed_queries(
    collection: Collection,
    queries: np.ndarray,
    where: dict[str, Any] | None,
    warmup: int = WARMUP,
) -> tuple[list[float], list[list[str]]]:
    for q in queries[:warmup]:
        collection.query(query_embeddings=[q], n_results=K, where=where, include=INCLUDE_QUERY)
    latencies, found = [], []
    for q in queries:
        started = time.perf_counter()
        result = collection.query(
            query_embeddings=[q], n_results=K, where=where, include=INCLUDE_QUERY
        )
        latencies.append(time.perf_counter() - started)
        found.append(result["ids"][0])
    return latencies, found


def range_gets(collection: Collection, wl: Workload) -> dict[str, float]:
    def where(lo: float) -> Any:
        return {"$and": [{"score": {"$gte": lo}}, {"score": {"$lt": lo + RANGE_WIDTH}}]}

    for lo in wl.ranges[:WARMUP]:
        collection.get(where=where(float(lo)), limit=RANGE_LIMIT, include=INCLUDE_GET)
    latencies, correct = [], 0
    for lo, expected in zip(wl.ranges, wl.range_expected, strict=True):
        started = time.perf_counter()
        result = collection.get(where=where(float(lo)), limit=RANGE_LIMIT, include=INCLUDE_GET)
        latencies.append(time.perf_counter() - started)
        rows = [int(i) for i in result["ids"]]
        in_range = all(lo <= wl.score[r] < lo + RANGE_WIDTH for r in rows)
        correct += int(in_range and len(set(rows)) == min(RANGE_LIMIT, int(expected)))
    return {**ms_percentiles(latencies, "get_range"), "get_range_correct": correct / len(wl.ranges)}


def settle(server: Server, collection: Collection, queries: np.ndarray, limit: float) -> float:
    """Seconds from the server's start until it has settled, as an application with light
    traffic sees it: one query every ``SETTLE_INTERVAL_S`` until ours logs the collection's
    graph built (the first queries read the table into memory, then a background thread builds
    the graph; a benchmark hammering queries meanwhile starves that thread of the two cores),
    or ``limit`` seconds pass; then the warm-up queries. Chroma's index is ready once loaded."""
    deadline = time.perf_counter() + limit
    marker = f"graph of {collection.id} built"
    while server.kind == "ours" and time.perf_counter() < deadline:
        if marker in server.log_since_start():
            break
        timed_queries(collection, queries[:1], None, warmup=0)
        time.sleep(SETTLE_INTERVAL_S)
    settled = time.perf_counter() - server.started_at
    timed_queries(collection, queries[:WARMUP], None, warmup=0)
    return settled


def throughput(
    server: Server, name: str, queries: np.ndarray, threads: int, duration: float
) -> dict[str, float]:
    """``threads`` clients, each its own HttpClient, querying in a loop for ``duration`` s."""
    barrier = threading.Barrier(threads + 1)
    go = threading.Event()  # set once the deadline is, so no client reads it before
    done = [0] * threads
    errors: list[str] = []
    latencies: list[list[float]] = [[] for _ in range(threads)]
    deadline = [0.0]

    def worker(index: int) -> None:
        try:
            collection = server.client().get_collection(name)
        except Exception as exc:  # surface in the result, do not hang the barrier
            errors.append(repr(exc))
            barrier.abort()
            return
        rng = np.random.default_rng([7, index])
        barrier.wait()
        go.wait()
        while time.perf_counter() < deadline[0]:
            q = queries[int(rng.integers(len(queries)))]
            started = time.perf_counter()
            try:
                collection.query(query_embeddings=[q], n_results=K, include=INCLUDE_QUERY)
            except Exception as exc:
                errors.append(repr(exc))
                continue
            latencies[index].append(time.perf_counter() - started)
            done[index] += 1

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    try:
        barrier.wait(timeout=START_TIMEOUT_S)
    except threading.BrokenBarrierError as exc:
        raise RuntimeError(f"throughput clients failed to start: {errors[:3]}") from exc
    started = time.perf_counter()
    deadline[0] = started + duration
    go.set()
    for t in pool:
        t.join(duration + REQUEST_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    flat = [x for per in latencies for x in per]
    out = {"throughput_qps": sum(done) / elapsed, "throughput_errors": float(len(errors))}
    if flat:
        out.update(ms_percentiles(flat, "throughput_latency"))
    if errors:
        print(f"    {len(errors)} errors under load, first: {errors[0]}", file=sys.stderr)
    return out


def maintain(server: Server) -> dict[str, Any]:
    """``chroma-serverless maintain`` on the stopped server's data dir, timed.

    ``index_build_s`` is the wall time minus that of the same command on a collection id that
    does not exist (process start, imports, catalog open), measured right after.
    """

    def run(*extra: str) -> tuple[float, str]:
        cmd = [str(BIN / "chroma-serverless"), "maintain", "--path", str(server.data), *extra]
        started = time.perf_counter()
        done = subprocess.run(
            cmd, env=server.env, capture_output=True, text=True, timeout=MAINTAIN_TIMEOUT_S
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"maintain failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return elapsed, done.stdout

    wall, stdout = run()
    baseline, _ = run("--collection", "00000000-0000-4000-8000-000000000000")
    reports = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {
        "index_build_s": max(0.0, wall - baseline),
        "maintain_wall_s": wall,
        "maintain_startup_s": baseline,
        "maintain_reports": reports,
    }


def run_server(
    kind: str, wl: Workload, args: argparse.Namespace, workdir: Path, env: dict[str, str]
) -> dict[str, Any]:
    data = workdir / f"{kind}-{wl.name}"
    server = Server(kind, data, workdir / f"{kind}-{wl.name}.log", env)
    name = f"bench-{wl.name}"
    out: dict[str, Any] = {}
    try:
        # 1. ingest into a fresh server
        with running(server):
            out["first_ready_s"] = server.wait_ready()
            collection = server.client().create_collection(
                name,
                configuration=SPACE,
                embedding_function=None,  # type: ignore[arg-type]
            )
            print(f"  [{kind}] ingest {wl.rows} rows", flush=True)
            out.update(ingest(collection, wl, args.batch))
            count = collection.count()
            if count != wl.rows:
                raise RuntimeError(f"count after ingest is {count}, expected {wl.rows}")
            # queries at once, while (ours) the background maintainer indexes
            latencies, found = timed_queries(collection, wl.queries, None, warmup=0)
            out.update(ms_percentiles(latencies, "fresh"))
            out["fresh_recall_at_10"] = recall(found, wl.truth)
        # 2. index build (ours only; Chroma builds its HNSW graph during ingest)
        if kind == "ours":
            print(f"  [{kind}] maintain", flush=True)
            out.update(maintain(server))
        out["ingest_indexed_rps"] = wl.rows / (out["ingest_s"] + out.get("index_build_s", 0.0))
        out["disk_mb"] = dir_bytes(data) / 1e6
        # 3. cold start on the existing dir, then the read workloads on that process
        with running(server):
            out["ready_s"] = server.wait_ready()
            collection = server.client().get_collection(name)
            collection.query(query_embeddings=[wl.queries[0]], n_results=K, include=INCLUDE_QUERY)
            out["cold_start_s"] = time.perf_counter() - server.started_at
            count = collection.count()
            if count != wl.rows:
                raise RuntimeError(f"count after restart is {count}, expected {wl.rows}")
            print(f"  [{kind}] settle (at most {args.warmup:.0f} s)", flush=True)
            out["settled_s"] = settle(server, collection, wl.queries, args.warmup)
            latencies, found = timed_queries(collection, wl.queries, None)
            out.update(ms_percentiles(latencies, "query"))
            out["recall_at_10"] = recall(found, wl.truth)
            where = {"category": FILTER_CATEGORY}
            latencies, found = timed_queries(collection, wl.queries, where)
            out.update(ms_percentiles(latencies, "filtered"))
            out["filtered_recall_at_10"] = recall(found, wl.filtered_truth)
            latencies, found = timed_queries(collection, wl.queries, {"band": FILTER_BAND})
            out.update(ms_percentiles(latencies, "banded"))
            out["banded_recall_at_10"] = recall(found, wl.banded_truth)
            out.update(range_gets(collection, wl))
            print(f"  [{kind}] {args.threads} clients for {args.duration:.0f} s", flush=True)
            out.update(throughput(server, name, wl.queries, args.threads, args.duration))
            out["rss_mb"] = server.rss_mb()
    except Exception as exc:
        traceback.print_exc()
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["log_tail"] = server.log_tail()
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------- report


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}" if abs(value) >= 0.01 else f"{value:.2e}"
    return str(value)


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    header = f"{'metric':<24} {'unit':<6} {'ours':>10} {'chroma':>10} {'ours/chroma':>12}"
    for dataset, by_server in results.items():
        lines += ["", f"== {dataset}", header, "-" * len(header)]
        for key, label, unit, higher in METRICS:
            ours = by_server.get("ours", {}).get(key)
            chroma = by_server.get("chroma", {}).get(key)
            ratio = ours / chroma if ours is not None and chroma else None
            arrow = "↑" if higher else "↓"
            lines.append(
                f"{label + ' ' + arrow:<24} {unit:<6} {fmt(ours):>10} {fmt(chroma):>10} "
                f"{fmt(ratio):>12}"
            )
        for server in SERVERS:
            if "error" in by_server.get(server, {}):
                lines.append(f"  {server} FAILED: {by_server[server]['error']}")
    lines.append("")
    lines.append("↑ higher is better, ↓ lower is better; index build for Chroma happens in ingest")
    return "\n".join(lines)


def advantage(ours: Any, chroma: Any, higher: bool) -> float | None:
    """How many times better ours is (> 1) or worse (< 1), whatever the metric's direction."""
    if not isinstance(ours, int | float) or not isinstance(chroma, int | float):
        return None
    if ours <= 0 or chroma <= 0:
        return None
    return float(ours / chroma if higher else chroma / ours)


def chart(results: dict[str, dict[str, dict[str, Any]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(m[0] in s for r in results.values() for s in r.values())]
    cols = 4
    rows = (len(metrics) + cols - 1) // cols
    fig = plt.figure(figsize=(4 * cols, 3 * rows + 4))
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[3] * rows + [4])
    datasets = list(results)
    x = np.arange(len(datasets))
    colours = {"ours": "#1f77b4", "chroma": "#ff7f0e"}
    for i, (key, label, unit, higher) in enumerate(metrics):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        for j, server in enumerate(SERVERS):
            values = [results[d].get(server, {}).get(key) for d in datasets]
            heights = [v if v is not None else 0.0 for v in values]
            bars = ax.bar(x + (j - 0.5) * 0.38, heights, 0.38, label=server, color=colours[server])
            for bar, v in zip(bars, values, strict=True):
                ax.annotate(
                    fmt(v),
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_title(f"{label} ({unit or 'ratio'}) {'↑' if higher else '↓'}", fontsize=9)
        ax.set_xticks(x, datasets, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(y=0.2)
        if i == 0:
            ax.legend(fontsize=8)
    # Summary: factor by which ours is better (> 1) or worse (< 1), log scale.
    ax = fig.add_subplot(grid[rows, :])
    width = 0.8 / max(1, len(datasets))
    for j, dataset in enumerate(datasets):
        by = results[dataset]
        factors = [
            advantage(by.get("ours", {}).get(k), by.get("chroma", {}).get(k), h)
            for k, _, _, h in metrics
        ]
        pos = np.arange(len(metrics)) + (j - (len(datasets) - 1) / 2) * width
        heights = [(f or 1.0) - 1.0 for f in factors]  # bars grow from 1 up or down
        ax.bar(pos, heights, width, bottom=1.0, label=dataset, color=f"C{j + 2}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(metrics)), [m[1] for m in metrics], rotation=30, ha="right")
    ax.tick_params(labelsize=8)
    ax.set_title("advantage of chroma-serverless (× better > 1, × worse < 1)", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--datasets", default="clustered,lowrank")
    parser.add_argument("--servers", default="ours,chroma", help="comma-separated subset")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of N-client load")
    parser.add_argument(
        "--warmup",
        type=float,
        default=180.0,
        help="at most this many seconds after restart for ours to build its graph (light queries)",
    )
    parser.add_argument("--batch", type=int, default=1000, help="records per client add")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, help="parent of the temp data dirs")
    parser.add_argument("--keep", action="store_true", help="keep data dirs and logs")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if set(servers) - set(SERVERS) or not servers:
        parser.error(f"--servers must be a subset of {','.join(SERVERS)}")
    if args.queries <= WARMUP:
        parser.error(f"--queries must be more than {WARMUP}")

    started = time.perf_counter()
    import synthetic as ds_module  # bench/ is on sys.path when run as a script

    env = dict(os.environ)
    env.pop("CHROMA_SERVERLESS_PATH", None)  # --path decides
    workdir = Path(tempfile.mkdtemp(prefix="compare-", dir=args.workdir))
    results: dict[str, dict[str, dict[str, Any]]] = {}
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": args.rows,
        "queries": args.queries,
        "threads": args.threads,
        "duration_s": args.duration,
        "batch": args.batch,
        "k": K,
        "include_query": INCLUDE_QUERY,
        "filter": {"category": FILTER_CATEGORY},
        "range_width": RANGE_WIDTH,
        "range_limit": RANGE_LIMIT,
        "versions": {p: version(p) for p in ("chromadb", "chroma-serverless", "lancedb")},
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "load_average": os.getloadavg(),
        "env": {k: v for k, v in env.items() if k.startswith("CHROMA_SERVERLESS_")},
        "workdir": str(workdir),
    }
    print(f"compare: {args.rows} rows, {args.queries} queries, work dir {workdir}", flush=True)
    try:
        for name in names:
            t0 = time.perf_counter()
            wl = build_workload(ds_module, name, args.rows, args.queries)
            print(f"{name}: data and ground truth in {time.perf_counter() - t0:.1f} s", flush=True)
            results[name] = {}
            for kind in servers:
                t0 = time.perf_counter()
                results[name][kind] = run_server(kind, wl, args, workdir, env)
                results[name][kind]["wall_s"] = time.perf_counter() - t0
                print(f"  [{kind}] done in {time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    meta["total_s"] = time.perf_counter() - started
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    png = args.out.with_suffix(".png")
    chart(
        results,
        png,
        f"chroma-serverless vs Chroma {meta['versions']['chromadb']}: "
        f"{args.rows} rows x 384, {args.threads} clients",
    )
    print(f"wrote {args.out} and {png} ({meta['total_s']:.0f} s)")
    failed = any("error" in r for by in results.values() for r in by.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
