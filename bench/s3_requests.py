"""Object-store traffic of the S3 mode: requests and bytes per query against moto's S3.

    python bench/s3_requests.py [--rows 100000] [--dataset lowrank] [--warm 50] \\
        [--latency-ms 20] [--out FILE]

Runs moto's server in this process behind a WSGI middleware that counts every request (method,
kind: GET with or without Range, HEAD, LIST, PUT, ...) and the bytes sent and received, grouped
by *phase*. Builds a collection table of ``--rows`` x 384 (``bench/synthetic.py``, metadata
``category``/``score``/``tag`` as in ``compare.py``) in ``s3://bench/records`` with
:class:`chroma_serverless.records.store.LanceRecordStore` and indexes it with
``store.maintain`` (the IVF-PQ index is built from ``IndexPolicy.threshold`` rows on, 20000 by
default).

Then a fresh Python process (the *child*) imports the store, opens it and queries, announcing
each phase to the middleware (``GET /__bench__/phase/<name>``, not counted):

- ``open``: ``LanceRecordStore(uri, storage_options)``;
- ``cold_query``: the first query (n_results=10, metadatas and distances): opens the table,
  lists its indexes, searches;
- ``load``: queries until the store's memory tier holds the table (read in the background
  from the second query on), i.e. the one-time cost of a warm container;
- ``warm_query``: ``--warm`` more queries on the same store (different query vectors);
- ``first_filtered`` / ``warm_filtered``: queries with ``where={"category": 3}``;
- ``first_get`` / ``warm_get``: ``get`` with a 1% ``score`` range, ``limit=100``.

With ``--latency-ms`` every object-store request after the build waits that long first, as a
real store's first byte does, so the reported latencies show what the request pattern costs.

Reports requests and bytes per operation per phase, the cold bytes as a share of the raw
vector column (rows x 384 x 4 bytes) and of the table's objects, and the time from spawning the
child (interpreter start and imports included) to its first answered query. Prints a table and
writes ``bench/results/s3_requests.json``. moto answers from memory on localhost, so times are
a lower bound for real S3 (tens of ms per request round trip); counts and bytes carry over.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import numpy as np

    from chroma_serverless.records.store import LanceRecordStore
    from chroma_serverless.types import Collection

    WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "s3_requests.json"
BUCKET = "bench"
PREFIX = "records"
DIM = 384
K = 10
PHASE_PATH = "/__bench__/phase/"
CHILD_TIMEOUT_S = 1800.0
FILTER_CATEGORY = 3
RANGE_WIDTH = 0.01
RANGE_LIMIT = 100
ADD_BATCH = 5000
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def storage_options(endpoint: str) -> dict[str, str]:
    """As ``tests/support/moto.py`` ``s3_storage_options``."""
    return {
        "aws_endpoint": endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "allow_http": "true",
    }


def collection_for(collection_id: str) -> Collection:
    from chroma_serverless.types import Collection

    return Collection(
        id=collection_id,
        name="bench",
        tenant="default_tenant",
        database="default_database",
        metadata=None,
        configuration={"hnsw": {"space": "cosine"}},
        dimension=DIM,
    )


# ---------------------------------------------------------------------------- counting moto


def classify(method: str, query: str, has_range: bool) -> str:
    params = parse_qs(query, keep_blank_values=True)
    if method == "GET" and "list-type" in params:
        return "LIST"
    if method == "GET":
        return "GET range" if has_range else "GET whole"
    if method == "PUT" and "partNumber" in params:
        return "PUT part"
    if method == "POST" and "uploads" in params:
        return "POST create-multipart"
    if method == "POST" and "uploadId" in params:
        return "POST complete-multipart"
    if method == "POST" and "delete" in params:
        return "POST delete-objects"
    return method


class Counter:
    """WSGI middleware: counts requests and bytes per phase; the phase is set over HTTP."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.phase = "setup"
        self.lock = threading.Lock()
        # phase -> kind -> {"requests", "bytes_out", "bytes_in"}
        self.stats: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: {"requests": 0, "bytes_out": 0, "bytes_in": 0})
        )
        self.log: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.latency = 0.0  # seconds added before every counted request (``--latency-ms``)

    def set_phase(self, phase: str) -> None:
        with self.lock:
            self.phase = phase

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PHASE_PATH):
            self.set_phase(path[len(PHASE_PATH) :])
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]
        return self._counted(environ, start_response)

    def _counted(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterator[bytes]:
        with self.lock:
            phase = self.phase
        if self.latency:  # first-byte latency of a real object store, per request
            time.sleep(self.latency)
        served = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "")
        byte_range = environ.get("HTTP_RANGE")
        kind = classify(method, environ.get("QUERY_STRING", ""), byte_range is not None)
        bytes_in = int(environ.get("CONTENT_LENGTH") or 0)
        status: list[str] = []

        def recording_start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        sent = 0
        body = self.app(environ, recording_start_response)
        try:
            for chunk in body:
                sent += len(chunk)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            with self.lock:
                entry = self.stats[phase][kind]
                entry["requests"] += 1
                entry["bytes_out"] += sent
                entry["bytes_in"] += bytes_in
                self.log[phase].append(
                    {
                        "method": method,
                        "kind": kind,
                        "path": environ.get("PATH_INFO", "").removeprefix(f"/{BUCKET}/{PREFIX}/"),
                        "range": byte_range,
                        "status": status[0].split()[0] if status else None,
                        "bytes": sent,
                        "moto_ms": 1000 * (time.perf_counter() - served),
                    }
                )


def keep_object_bodies() -> None:
    """moto re-reads an object's whole body from its spooled temporary file for every GET, a
    ranged one included (312 MB per 4 KB read of the data file here; an index build that samples
    rows then takes hours). An object's body never changes (a PUT makes a new key), so keep it
    once read. Requests and bytes on the wire are unchanged."""
    from moto.s3.models import FakeKey

    read: Any = FakeKey.__dict__["value"]  # the property

    def value(key: Any) -> bytes:
        body: bytes | None = key.__dict__.get("_bench_body")
        if body is None:
            body = key.__dict__["_bench_body"] = read.fget(key)
        return body

    def set_value(key: Any, body: bytes) -> None:
        key.__dict__.pop("_bench_body", None)
        read.fset(key, body)

    FakeKey.value = property(value, set_value)  # type: ignore[method-assign, assignment]


def s3_first(s3: WsgiApp, dispatcher: WsgiApp) -> WsgiApp:
    """Signed S3 requests straight to moto's S3 app, the rest to its dispatcher. To route a
    request, the dispatcher lists moto's package directory (some 180 ``stat`` calls) under a
    lock: about 1 ms of CPU per request here, twice what answering a HEAD takes, and
    concurrent requests queue behind it, where S3 answers them side by side."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        signed_for_s3 = "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", "")
        return (s3 if signed_for_s3 else dispatcher)(environ, start_response)

    return app


class CountingMoto:
    """moto's server (all services) on a free port in a daemon thread, behind :class:`Counter`."""

    def __init__(self) -> None:
        keep_object_bodies()
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
        self.counter = Counter(
            s3_first(create_backend_app("s3"), DomainDispatcherApplication(create_backend_app))
        )
        self.server = make_server(
            "127.0.0.1", 0, self.counter, threaded=True, request_handler=MotoRequestHandler
        )
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def object_sizes(endpoint: str, prefix: str) -> dict[str, int]:
    """Bytes under the table's prefix, by top-level directory (data, _indices, _versions, ...)."""
    sizes: dict[str, int] = defaultdict(int)
    pages = s3_client(endpoint).get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            rest = obj["Key"][len(prefix) :].lstrip("/")
            top = rest.split("/", 1)[0] if "/" in rest else "(root)"
            sizes[top] += int(obj["Size"])
    sizes["total"] = sum(sizes.values())
    return dict(sizes)


# ---------------------------------------------------------------------------- data


def build_table(
    store: LanceRecordStore, collection: Collection, vectors: np.ndarray
) -> dict[str, Any]:
    import numpy as np

    from chroma_serverless.types import RecordBatch

    rows = len(vectors)
    rng = np.random.default_rng([20260, rows])
    category = rng.integers(0, 10, size=rows)
    score = rng.random(rows)
    started = time.perf_counter()
    for start in range(0, rows, ADD_BATCH):
        stop = min(start + ADD_BATCH, rows)
        metadatas: list[Any] = [
            {"category": int(category[i]), "score": float(score[i]), "tag": f"t{i % 100:02d}"}
            for i in range(start, stop)
        ]
        store.add(
            collection,
            RecordBatch(
                ids=[str(i) for i in range(start, stop)],
                embeddings=vectors[start:stop],
                metadatas=metadatas,
            ),
        )
    added = time.perf_counter() - started
    started = time.perf_counter()
    report = store.maintain(collection)
    return {"add_s": added, "maintain_s": time.perf_counter() - started, "maintain": report}


# ---------------------------------------------------------------------------- child


LOAD_TIMEOUT_S = 300.0


def child(args: argparse.Namespace) -> int:
    """The fresh process: imports, opens, queries; phases announced to the counting proxy."""
    t0 = time.perf_counter()
    from urllib.request import urlopen

    def phase(name: str) -> None:
        with urlopen(f"{args.endpoint}{PHASE_PATH}{name}", timeout=30) as response:
            response.read()

    phase("import")
    import numpy as np

    from chroma_serverless.records.store import LanceRecordStore
    from chroma_serverless.types import Filter, GetRequest, QueryRequest

    t_import = time.perf_counter()
    queries = np.load(args.queries_file)
    phase("open")
    store = LanceRecordStore(args.uri, storage_options(args.endpoint))
    collection = collection_for(args.collection)
    t_open = time.perf_counter()
    include: Any = ("metadatas", "distances")
    phase("cold_query")
    first = store.query(
        collection, QueryRequest(embeddings=queries[:1], n_results=K, include=include)
    )
    t_first = time.perf_counter()
    print(json.dumps({"first_answer": True}), flush=True)  # the parent's clock stops here
    # A large table is read into memory in the background from its second query on; this
    # phase is that one-time read and graph build (plus the engine answering meanwhile), until
    # it is held.
    phase("load")
    t_load = time.perf_counter()
    while not held_in_memory(store, collection.id):
        store.query(collection, QueryRequest(embeddings=queries[:1], n_results=K, include=include))
        time.sleep(0.05)
        if time.perf_counter() - t_load > LOAD_TIMEOUT_S:
            break
    t_loaded = time.perf_counter()
    phase("warm_query")
    warm = queries[1 : 1 + args.warm]
    latencies: dict[str, list[float]] = defaultdict(list)
    for q in warm:
        started = time.perf_counter()
        store.query(collection, QueryRequest(embeddings=q[None], n_results=K, include=include))
        latencies["warm_query"].append(time.perf_counter() - started)
    where = Filter(where={"category": FILTER_CATEGORY})
    for name, batch in (("first_filtered", queries[:1]), ("warm_filtered", warm)):
        phase(name)
        for q in batch:
            started = time.perf_counter()
            store.query(
                collection,
                QueryRequest(embeddings=q[None], n_results=K, filter=where, include=include),
            )
            latencies[name].append(time.perf_counter() - started)
    lows = np.random.default_rng(3).uniform(0.0, 1.0 - RANGE_WIDTH, 1 + args.warm)
    for name, batch in (("first_get", lows[:1]), ("warm_get", lows[1:])):
        phase(name)
        for lo in batch:
            rng_filter = {
                "$and": [
                    {"score": {"$gte": float(lo)}},
                    {"score": {"$lt": float(lo) + RANGE_WIDTH}},
                ]
            }
            started = time.perf_counter()
            store.get(
                collection,
                GetRequest(
                    filter=Filter(where=rng_filter), limit=RANGE_LIMIT, include=("metadatas",)
                ),
            )
            latencies[name].append(time.perf_counter() - started)
    phase("done")
    out = {
        "imports_s": t_import - t0,
        "open_s": t_open - t_import,
        "cold_query_s": t_first - t_open,
        "load_s": t_loaded - t_load,
        "held_in_memory": held_in_memory(store, collection.id),
        "first_ids": first.ids[0],
        "latency_ms": {k: 1000 * float(np.median(v)) for k, v in latencies.items()},
    }
    print(json.dumps(out), flush=True)
    return 0


# ---------------------------------------------------------------------------- parent


def held_in_memory(store: Any, collection_id: str) -> bool:
    """Whether the store's memory tier holds the table's current version, with its graph built
    if it gets one (a private look: the benchmark reports what the tier does, which the store's
    API deliberately hides)."""
    table = store._tables.open(collection_id)
    snapshot = None if table is None else store._memory.at(collection_id, table.version)
    return snapshot is not None and (snapshot.graph is None or snapshot.graph.ready)


def run_child(
    moto: CountingMoto, uri: str, collection_id: str, queries_file: Path, warm: int
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--endpoint",
        moto.endpoint,
        "--uri",
        uri,
        "--collection",
        collection_id,
        "--queries-file",
        str(queries_file),
        "--warm",
        str(warm),
    ]
    env = {**os.environ, **CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], CHILD_TIMEOUT_S)
        if not readable:
            raise TimeoutError(f"no answer from the child in {CHILD_TIMEOUT_S:.0f} s")
        first_line = proc.stdout.readline()
        to_first = time.perf_counter() - started
        if not first_line:
            raise RuntimeError(f"child exited ({proc.wait(30)}) before answering")
        rest, _ = proc.communicate(timeout=CHILD_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"child failed with {proc.returncode}")
        report: dict[str, Any] = json.loads(rest.strip().splitlines()[-1])
        report["spawn_to_first_answer_s"] = to_first
        return report
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def phase_summary(counter: Counter, phase: str, ops: int) -> dict[str, Any]:
    kinds = counter.stats.get(phase, {})
    requests = sum(k["requests"] for k in kinds.values())
    out = sum(k["bytes_out"] for k in kinds.values())
    received = sum(k["bytes_in"] for k in kinds.values())
    return {
        "ops": ops,
        "requests": requests,
        "bytes_out": out,
        "bytes_in": received,
        "requests_per_op": requests / max(1, ops),
        "bytes_out_per_op": out / max(1, ops),
        # moto's own time per request, after the injected latency (real S3's is within it)
        "moto_ms_median": median([r["moto_ms"] for r in counter.log.get(phase, [])]),
        "by_kind": {kind: dict(v) for kind, v in sorted(kinds.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dataset", default="lowrank", choices=("clustered", "lowrank"))
    parser.add_argument("--warm", type=int, default=50, help="warm operations per phase")
    parser.add_argument(
        "--index-threshold",
        type=int,
        help="rows from which maintain builds the IVF-PQ index (default: IndexPolicy's, 20000)",
    )
    parser.add_argument(
        "--log-requests", action="store_true", help="write every request of every phase to --out"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="latency added to every object-store request after the build (real S3: 10-30 ms)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--collection", help=argparse.SUPPRESS)
    parser.add_argument("--queries-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    import numpy as np

    from chroma_serverless.records.store import LanceRecordStore
    from chroma_serverless.types import IndexPolicy

    started = time.perf_counter()
    policy = IndexPolicy()
    if args.index_threshold is not None:
        policy = IndexPolicy(threshold=args.index_threshold)
    for key, value in CREDENTIALS.items():
        os.environ.setdefault(key, value)
    import synthetic as ds  # bench/ is on sys.path when run as a script

    vectors = ds.vectors(args.dataset, args.rows)
    queries = ds.queries(args.dataset, 1 + args.warm)
    moto = CountingMoto()
    try:
        s3_client(moto.endpoint).create_bucket(Bucket=BUCKET)
        uri = f"s3://{BUCKET}/{PREFIX}"
        collection = collection_for(str(uuid.uuid4()))
        store = LanceRecordStore(uri, storage_options(moto.endpoint), policy)
        moto.counter.set_phase("build")
        print(f"building {args.rows} x {DIM} ({args.dataset}) on moto S3 ...", flush=True)
        build = build_table(store, collection, vectors)
        del store
        moto.counter.set_phase("inspect")
        moto.counter.latency = args.latency_ms / 1000
        sizes = object_sizes(moto.endpoint, f"{PREFIX}/{collection.id}.lance")
        with tempfile.TemporaryDirectory() as tmp:
            queries_file = Path(tmp) / "queries.npy"
            np.save(queries_file, queries)
            print("fresh process: cold query, then warm ones ...", flush=True)
            child_report = run_child(moto, uri, collection.id, queries_file, args.warm)
        counter = moto.counter
    finally:
        moto.stop()

    ops = {
        "open": 1,
        "cold_query": 1,
        "load": 1,
        "warm_query": args.warm,
        "first_filtered": 1,
        "warm_filtered": args.warm,
        "first_get": 1,
        "warm_get": args.warm,
    }
    phases = {name: phase_summary(counter, name, n) for name, n in ops.items()}
    build["s3"] = phase_summary(counter, "build", 1)
    cold_requests = phases["open"]["requests"] + phases["cold_query"]["requests"]
    cold_bytes = phases["open"]["bytes_out"] + phases["cold_query"]["bytes_out"]
    vector_bytes = args.rows * DIM * 4
    result = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "rows": args.rows,
            "dataset": args.dataset,
            "warm": args.warm,
            "index_threshold": policy.threshold,
            "python": platform.python_version(),
            "machine": f"{platform.machine()} {os.cpu_count()} cpus",
            "load_average": os.getloadavg(),
            "total_s": time.perf_counter() - started,
        },
        "build": build,
        "object_bytes": sizes,
        "vector_column_bytes": vector_bytes,
        "cold": {
            "requests": cold_requests,
            "bytes": cold_bytes,
            "pct_of_vector_column": 100.0 * cold_bytes / vector_bytes,
            "pct_of_table_objects": 100.0 * cold_bytes / max(1, sizes["total"]),
            "requests_log": counter.log.get("open", []) + counter.log.get("cold_query", []),
        },
        "phases": phases,
        "child": child_report,
    }
    if args.log_requests:
        result["requests_log"] = {name: counter.log.get(name, []) for name in ops}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    print(f"wrote {args.out} ({result['meta']['total_s']:.0f} s)")
    return 0


def report(result: dict[str, Any]) -> str:
    def mb(n: float) -> str:
        return f"{n / 1e6:,.3f} MB" if n < 1e7 else f"{n / 1e6:,.1f} MB"

    meta, child_report, build = result["meta"], result["child"], result["build"]
    lines = [
        f"S3 traffic, {meta['rows']} x {DIM} ({meta['dataset']}), "
        f"maintain: {result['build']['maintain']}",
        f"build: add {build['add_s']:.1f} s, maintain {build['maintain_s']:.1f} s, "
        f"{build['s3']['requests']} requests, {mb(build['s3']['bytes_in'])} uploaded, "
        f"{mb(build['s3']['bytes_out'])} downloaded",
        f"{'phase':<16} {'ops':>5} {'req/op':>8} {'bytes/op':>14} {'median ms':>10}"
        f" {'moto ms/req':>11}  kinds (total)",
    ]
    for name, p in result["phases"].items():
        kinds = ", ".join(f"{k} {v['requests']}" for k, v in p["by_kind"].items())
        p50, moto = child_report["latency_ms"].get(name), p["moto_ms_median"]
        lines.append(
            f"{name:<16} {p['ops']:>5} {p['requests_per_op']:>8.1f} {mb(p['bytes_out_per_op']):>14}"
            f" {'' if p50 is None else f'{p50:.1f}':>10}"
            f" {'' if moto is None else f'{moto:.2f}':>11}  {kinds}"
        )
    cold = result["cold"]
    sizes = result["object_bytes"]
    lines += [
        f"cold (open + first query): {cold['requests']} requests, {mb(cold['bytes'])} = "
        f"{cold['pct_of_vector_column']:.2f}% of the raw vector column "
        f"({mb(result['vector_column_bytes'])}), {cold['pct_of_table_objects']:.2f}% of the "
        f"table's objects ({mb(sizes['total'])}: "
        + ", ".join(f"{k} {mb(v)}" for k, v in sizes.items() if k != "total")
        + ")",
        f"fresh process → first answer: {child_report['spawn_to_first_answer_s']:.2f} s "
        f"(imports {child_report['imports_s']:.2f} s, open {child_report['open_s']:.3f} s, "
        f"first query {child_report['cold_query_s']:.3f} s; the rest is interpreter start)",
        f"memory tier: held after {child_report['load_s']:.1f} s of background read "
        f"({'yes' if child_report['held_in_memory'] else 'NO'})",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
