"""The AWS deployment's request path: several server instances on one slow moto, official client.

    python bench/deployed.py [--instances 4] [--scenarios single,writers,warm] \\
        [--s3-latency-ms 20] [--dynamodb-latency-ms 5] [--out bench/results/deployed.json]
    python bench/deployed.py --rows 2000 --warm-rows 5000 --rounds 5 --adds 2 --writers 2 \\
        --warm-pause 1 --warm-queries 10 --out /tmp/deployed-smoke.json   # smoke test, ~1 min

What runs (every process in its own process group, stopped by its id at the end, also on
Ctrl-C or an error):

- **moto** in a child process (``--moto-child``): moto's WSGI apps on werkzeug's threaded
  server (a thread per connection, as ``ThreadedMotoServer``; TCP_NODELAY) behind a middleware
  that sleeps a first-byte latency per request, ``--s3-latency-ms`` for S3 and
  ``--dynamodb-latency-ms`` for DynamoDB (told apart by the ``X-Amz-Target: DynamoDB_20120810.*``
  header or the SigV4 credential scope's service), and counts requests per sender, service and
  kind (S3: ``GET range``, ``GET whole``, ``HEAD``, ``LIST``, ``PUT``, ``PUT if-none-match``
  (a commit), ``POST delete-objects``, ...; DynamoDB: the action), the non-2xx answers per kind
  and status (status ``none``: moto raised, and werkzeug answered 500 itself), and moto's own
  time per service (after the sleep). It listens on one free port
  per sender (``other``, ``server0``.., ``maintenance``, ``import``), every child getting its
  own as ``CHROMA_SERVERLESS_AWS_ENDPOINT``, so the port a request arrives on names who sent it
  (werkzeug closes every connection after one answer, so a lookup per connection would be one
  per request). ``GET /__bench__/counts`` reads the counters, ``POST /__bench__/reset`` zeroes
  them (neither is counted). S3 requests go straight to moto's S3 app and DynamoDB ones to its
  DynamoDB app (moto's all-service dispatcher routes each request under a lock). moto's DynamoDB
  answers one request at a time, as ``chroma_serverless.cli.serialize_dynamodb`` makes it (moto
  restores a whole table when a transaction's condition fails, wiping concurrent writes
  otherwise); the injected sleep happens before, outside that lock, as network time would.
  Object bodies are kept once read (``s3_requests.keep_object_bodies``: moto re-reads a whole
  object for each ranged GET). It creates the catalog table (``catalog.dynamodb.keys``,
  on-demand) and the records bucket. Before the scenarios, 50 raw HEADs and 50 raw GetItems from
  the benchmark process measure what a round trip to moto then takes (``moto_round_trip``).
- ``--instances`` **servers**, stand-ins for warm Lambda instances of the data function:
  ``python -m chroma_serverless.cli run --host 127.0.0.1 --port 0`` with
  ``CHROMA_SERVERLESS_MODE=aws``, the catalog table, ``RECORDS_URI=s3://<bucket>/records``,
  ``AWS_ENDPOINT`` (moto), ``MAINTENANCE=off`` (on AWS the data function queues maintenance
  instead), ``LOG_FORMAT=json``, a ``CHROMA_SERVERLESS_PATH`` of its own (Lambda's ``/tmp``) and
  ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE=--memory-mb`` (3008, ``template.yaml``'s ``DataMemorySize``;
  it sizes the in-memory tier). ``--auth`` turns auth on as the stack has it (an admin bearer
  token; every request then reads the token from DynamoDB).
- one **maintenance** process (``--maintenance-child``), the maintenance function's stand-in:
  the stores built as ``functions/maintenance/app.py`` builds them (``Settings.from_env``,
  ``setup.configure``, ``build_service(settings.replace(maintenance="off"))``, the same
  environment with ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE=--maintenance-memory-mb``, 4096) running
  ``maintain_all`` every ``--maintain-every`` seconds (start to start; at once when a sweep
  overran), so its commits race the writers'. The benchmark pauses it between sweeps where
  noted, and waits for a sweep that started after a given moment where it needs one.

Everything goes through Chroma's v2 HTTP API with ``chromadb.HttpClient`` (telemetry off, 300 s
timeout), on collections with ``configuration={"hnsw": {"space": "cosine"}}``, no embedding
function, records of the ``clustered`` 384-d dataset (``bench/synthetic.py``) with metadata
``{"category": int 0..9, "score": float}``. Scenarios (``--scenarios``):

- ``single``: a collection of ``--rows`` records loaded through instance A in batches of the
  client's ``max_batch_size``, then one maintenance sweep started after the load; one query
  through instance B (its cold open, reported apart); then ``--rounds`` rounds of: add 10 new
  records through A (timed), at once a query through B with one of the new vectors
  (``n_results=10``; visible = the new id among the results) and a ``get(ids=the 10 new ids)``
  through B (visible = all 10 returned). Reports add p50/p90/max, query-after-write p50/p90 and
  both visibility percentages.
- ``writers``: for each W in ``--writers`` (8 32), a collection seeded with 100 records, then W
  writer processes (each its own interpreter and clients, so the client's GIL does not cap the
  load), started together, each making ``--adds`` adds of ``--add-size`` (100) new records,
  round-robin over the instances. Reports records/s (acknowledged records / wall time from the
  first add's start to the last add's end), add p50/p90/max, adds over API Gateway's 29 s, the
  failed adds (HTTP status, error class, message; the first few), the final ``count()`` through a
  fresh client against seed + acknowledged, acknowledged ids missing and failed adds' ids
  present, and the servers' S3 and DynamoDB requests per acknowledged add (the maintenance
  process's during the run apart).
- ``warm``: a collection of ``--warm-rows`` records written to Parquet and loaded with
  ``python -m chroma_serverless.cli import FILE --no-maintain`` in AWS mode (maintenance paused
  meanwhile; HTTP adds if the command fails), then maintained by the maintenance process until
  ``get_indexing_status`` (through instance 0) has nothing unindexed, plus one more complete
  sweep. Maintenance is then paused, and on the last instance (which never served this
  collection) a fresh client's ``get_collection`` and 31 queries (the first is the cold one;
  p50 of 2-31), a pause of ``--warm-pause`` s, then ``--warm-queries`` (100) more: p50/p99,
  recall@10 against exact cosine top-10, and S3 and DynamoDB requests per query from moto's
  counters (reset before each phase).

Writes ``--out`` (``bench/results/deployed.json``): the git revision measured (``dirty`` if
files outside ``bench/`` differ from it), the machine (cpus, memory, load average before and
after), the parameters and injected latencies, every figure above, moto's counters and the CPU
seconds of moto, the servers and the maintenance process per scenario, and what the servers and
the maintenance process logged at ERROR and WARNING (counts per message and exception, the
first tracebacks' tails). Prints a compact table.
Everything shares the machine's cores (moto, the servers, the maintenance process and the
writers), so the figures are what this machine can do, not AWS; moto is one Python process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qs
from urllib.request import Request, urlopen

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import synthetic  # noqa: E402
from s3_requests import classify, keep_object_bodies  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

RESULTS = BENCH / "results" / "deployed.json"
CONTROL = "/__bench__/"
TABLE = "chroma-catalog"
BUCKET = "chroma-records"
DATASET: synthetic.DatasetName = "clustered"
DIM = synthetic.DIM
K = 10
CONFIGURATION: dict[str, Any] = {"hnsw": {"space": "cosine"}}
INCLUDE: Any = ["metadatas", "distances"]
REQUEST_TIMEOUT_S = 300.0
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0
SWEEP_TIMEOUT_S = 1800.0
GATEWAY_TIMEOUT_S = 29.0  # API Gateway's integration timeout (and the functions' Timeout)
SEED_RECORDS = 100  # records in a writers' collection before the writers start
COLD_QUERIES = 31
FIRST_FAILURES = 5
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


# ---------------------------------------------------------------------------- moto (child)


def service_of(environ: dict[str, Any]) -> str:
    """``s3``, ``dynamodb`` or ``other``: the target header, else the SigV4 credential scope."""
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        return "dynamodb"
    scope = re.search(
        r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request", environ.get("HTTP_AUTHORIZATION", "")
    )
    if scope is not None and scope.group(1) in ("s3", "dynamodb"):
        return scope.group(1)
    return "other"


def kind_of(service: str, environ: dict[str, Any]) -> str:
    if service == "dynamodb":
        return str(environ.get("HTTP_X_AMZ_TARGET", ".unknown")).rsplit(".", 1)[-1]
    method = str(environ.get("REQUEST_METHOD", ""))
    if service != "s3":
        return method
    kind = classify(method, environ.get("QUERY_STRING", ""), environ.get("HTTP_RANGE") is not None)
    if method == "PUT" and kind == "PUT":
        if environ.get("HTTP_X_AMZ_COPY_SOURCE"):
            return "PUT copy"
        if environ.get("HTTP_IF_NONE_MATCH"):
            return "PUT if-none-match"
        if environ.get("HTTP_IF_MATCH"):
            return "PUT if-match"
    return kind


class BenchMoto:
    """WSGI middleware in front of moto: injected latency, counters, the control endpoints."""

    def __init__(
        self, apps: dict[str, WsgiApp], s3_latency_s: float, dynamodb_latency_s: float
    ) -> None:
        self.apps = apps
        self.latency = {"s3": s3_latency_s, "dynamodb": dynamodb_latency_s, "other": 0.0}
        self.lock = threading.Lock()
        self.roles: dict[str, str] = {}  # the port a request came in on -> its sender's role
        self.reset()

    def reset(self) -> None:
        with self.lock:
            # role -> service -> kind -> requests (a role: the process that sent them)
            self.requests: dict[str, dict[str, dict[str, int]]] = defaultdict(
                lambda: defaultdict(lambda: defaultdict(int))
            )
            self.failures: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            self.moto_seconds: dict[str, float] = defaultdict(float)
            self.since = time.time()

    def counts(self) -> dict[str, Any]:
        with self.lock:
            by_service: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for services in self.requests.values():
                for service, kinds in services.items():
                    for kind, n in kinds.items():
                        by_service[service][kind] += n
            return {
                "seconds": time.time() - self.since,
                "requests": {s: dict(sorted(k.items())) for s, k in by_service.items()},
                "totals": {s: sum(k.values()) for s, k in by_service.items()},
                "by_role": {
                    role: {s: dict(sorted(k.items())) for s, k in services.items()}
                    for role, services in sorted(self.requests.items())
                },
                "not_2xx": {s: dict(sorted(k.items())) for s, k in self.failures.items()},
                "moto_seconds": dict(self.moto_seconds),
                "latency_ms": {s: 1000 * v for s, v in self.latency.items()},
            }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL):
            return self.control(path[len(CONTROL) :], environ, start_response)
        service = service_of(environ)
        if self.latency[service]:
            time.sleep(self.latency[service])  # first-byte latency: outside moto and its locks
        kind = kind_of(service, environ)
        role = self.roles.get(str(environ.get("SERVER_PORT")), "unknown")
        status: list[str] = []

        def recording(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        started = time.perf_counter()
        try:
            return self.apps.get(service, self.apps["other"])(environ, recording)
        finally:
            spent = time.perf_counter() - started
            code = status[0].split()[0] if status else "none"
            with self.lock:
                self.requests[role][service][kind] += 1
                self.moto_seconds[service] += spent
                if not code.startswith("2"):
                    self.failures[service][f"{kind} {code}"] += 1

    def control(
        self, action: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if action == "reset" and environ.get("REQUEST_METHOD") == "POST":
            self.reset()
            body = b"{}"
        elif action == "counts":
            body = json.dumps(self.counts()).encode()
        elif action == "latency" and environ.get("REQUEST_METHOD") == "POST":
            params = parse_qs(environ.get("QUERY_STRING", ""))
            for service in ("s3", "dynamodb"):
                if f"{service}_ms" in params:
                    self.latency[service] = float(params[f"{service}_ms"][0]) / 1000
            body = json.dumps(self.counts()["latency_ms"]).encode()
        else:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body]


def moto_child(args: argparse.Namespace) -> int:
    """The standalone moto: serve until killed; the endpoint is written to ``--ready-file``."""
    import logging

    import boto3
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from chroma_serverless.catalog.dynamodb.keys import ATTRIBUTES, KEY_SCHEMA
    from chroma_serverless.cli import serialize_dynamodb

    class Handler(MotoRequestHandler):
        disable_nagle_algorithm = True  # TCP_NODELAY: no small write waits for an ACK

    keep_object_bodies()
    serialize_dynamodb()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
    apps: dict[str, WsgiApp] = {
        "s3": create_backend_app("s3"),
        "dynamodb": create_backend_app("dynamodb"),
        "other": DomainDispatcherApplication(create_backend_app),
    }
    app = BenchMoto(apps, args.s3_latency_ms / 1000, args.dynamodb_latency_ms / 1000)
    # One listening port per role: the port a request arrives on names the process that sent
    # it (werkzeug closes every connection after one response, so nothing cheaper per
    # connection would do). The same app and backends behind all of them.
    endpoints: dict[str, str] = {}
    threads = []
    for role in ["other", *args.roles.split(",")]:
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Handler)
        port = server.server_address[1]
        app.roles[str(port)] = role
        endpoints[role] = f"http://127.0.0.1:{port}"
        threads.append(threading.Thread(target=server.serve_forever, daemon=True))
        threads[-1].start()
    endpoint = endpoints["other"]
    aws = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    boto3.client("dynamodb", **aws).create_table(  # type: ignore[call-overload]
        TableName=TABLE,
        KeySchema=KEY_SCHEMA,
        AttributeDefinitions=ATTRIBUTES,
        BillingMode="PAY_PER_REQUEST",
    )
    boto3.client("s3", **aws).create_bucket(Bucket=BUCKET)  # type: ignore[call-overload]
    app.reset()
    ready = Path(args.ready_file)
    ready.with_suffix(".tmp").write_text(json.dumps(endpoints))
    ready.with_suffix(".tmp").rename(ready)
    threads[0].join()
    return 0


# ---------------------------------------------------------------------------- maintenance (child)


def maintenance_child(args: argparse.Namespace) -> int:
    """The maintenance function's stand-in: ``maintain_all`` every ``--maintain-every`` s.

    Control files in ``--control-dir``: ``pause`` (a token) makes it stop between sweeps and
    echo the token into ``paused``; each sweep appends a JSON line to ``sweeps.jsonl``."""
    from chroma_serverless.observe import setup
    from chroma_serverless.service.maintenance import maintain_all
    from chroma_serverless.settings import Settings
    from chroma_serverless.wiring import build_service

    settings = Settings.from_env()  # as functions/maintenance/app.py, at its INIT
    setup.configure(settings)
    service = build_service(settings.replace(maintenance="off"))

    control = Path(args.control_dir)
    pause, paused, sweeps = control / "pause", control / "paused", control / "sweeps.jsonl"
    number = 0
    next_start = 0.0
    while True:
        token = _read(pause)
        if token is not None:
            if _read(paused) != token:
                _write(paused, token)
            time.sleep(0.1)
            continue
        if time.time() < next_start:
            time.sleep(0.1)
            continue
        started = time.time()
        next_start = started + args.maintain_every
        line: dict[str, Any] = {"sweep": number, "started": started}
        try:
            line["reports"] = maintain_all(service)
        except Exception as exc:  # the schedule's next run retries
            line["error"] = f"{type(exc).__name__}: {exc}"[:500]
        line["finished"] = time.time()
        with sweeps.open("a") as out:
            out.write(json.dumps(line, default=str) + "\n")
        number += 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _write(path: Path, text: str) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(text)
    partial.rename(path)


# ---------------------------------------------------------------------------- writer (child)


def writer_child(args: argparse.Namespace) -> int:
    """One writer: clients for every instance, ``ready`` on stdout, waits for a line on stdin,
    then ``--adds`` adds round-robin; the report as one JSON line on stdout."""
    ports = [int(p) for p in args.ports.split(",")]
    statuses: list[int | None] = [None]

    def record_status(response: Any) -> None:
        statuses[0] = response.status_code

    collections = []
    for port in ports:
        client = http_client(port, args.token, record_status)
        collections.append(client.get_collection(args.collection, embedding_function=None))
    vectors = np.load(args.vectors_file, mmap_mode="r")
    first = args.writer_index * args.adds * args.add_size
    print("ready", flush=True)
    if not sys.stdin.readline():
        return 1
    adds = []
    cpu_started = time.process_time()
    for j in range(args.adds):
        instance = (args.writer_index + j) % len(ports)
        rows = range(first + j * args.add_size, first + (j + 1) * args.add_size)
        ids = [f"w{args.writer_index}-{j}-{i}" for i in range(args.add_size)]
        statuses[0] = None
        add: dict[str, Any] = {"instance": instance, "start": time.time(), "ids": ids[0]}
        started = time.perf_counter()
        try:
            collections[instance].add(
                ids=ids,
                embeddings=np.ascontiguousarray(vectors[rows.start : rows.stop]),
                metadatas=[metadata(i) for i in rows],
            )
            add["ok"] = True
        except Exception as exc:
            add.update(ok=False, status=statuses[0], error=type(exc).__name__, message=str(exc))
        add["seconds"] = time.perf_counter() - started
        add["end"] = time.time()
        adds.append(add)
    cpu = time.process_time() - cpu_started
    print(json.dumps({"writer": args.writer_index, "adds": adds, "cpu_s": cpu}), flush=True)
    return 0


# ---------------------------------------------------------------------------- shared helpers


def metadata(i: int) -> dict[str, Any]:
    return {"category": i % 10, "score": (i * 0.6180339887) % 1.0}


def http_client(
    port: int, token: str | None = None, on_response: Callable[[Any], None] | None = None
) -> ClientAPI:
    import chromadb
    import httpx
    from chromadb.config import Settings

    headers = {"Authorization": f"Bearer {token}"} if token else None
    client = chromadb.HttpClient(
        host="127.0.0.1",
        port=port,
        headers=headers,
        settings=Settings(anonymized_telemetry=False),
    )
    # The client's httpx session has no timeout; a hung server must not hang the run.
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
        if on_response is not None:
            session.event_hooks["response"].append(on_response)
    return client


def ms(samples: list[float]) -> dict[str, Any]:
    """Count and p50/p90/p99/max/mean in milliseconds of durations in seconds."""
    if not samples:
        return {"n": 0}
    a = np.asarray(samples) * 1000.0
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "n": len(samples),
        "p50_ms": round(float(p50), 1),
        "p90_ms": round(float(p90), 1),
        "p99_ms": round(float(p99), 1),
        "max_ms": round(float(a.max()), 1),
        "mean_ms": round(float(a.mean()), 1),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def git_rev() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        # uncommitted changes outside bench/: what was measured is not the commit
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench")),
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_mb": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------- processes


@dataclass
class Child:
    """A child process in its own process group (so stopping it reaches anything it started)."""

    name: str
    proc: subprocess.Popen[Any]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT_S)

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Server:
    child: Child
    port: int = 0


@dataclass
class Cluster:
    """moto, the server instances and the maintenance process; :meth:`stop` ends them all."""

    args: argparse.Namespace
    workdir: Path
    children: list[Child] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)  # moto's, per role
    token: str | None = None
    moto: Child | None = None
    maintenance: Child | None = None

    def spawn(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = None,
    ) -> Child:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env if env is not None else self.env(),
                stdin=stdin,
                stdout=out if stdout is None else stdout,
                stderr=out,
                start_new_session=True,  # its own process group
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def script(self, *args: str) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), *args]

    @property
    def endpoint(self) -> str:
        return self.endpoints.get("other", "")

    def env(self, role: str = "other", **extra: str) -> dict[str, str]:
        """A child's environment; in AWS mode once moto runs, with moto's endpoint for
        ``role`` (its port names the process in the counters)."""
        common = str(ROOT / "layers" / "common")
        path = os.environ.get("PYTHONPATH")
        env = {
            **os.environ,
            "PYTHONPATH": common if not path else f"{common}{os.pathsep}{path}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        if self.endpoint:
            env.update(
                CHROMA_SERVERLESS_MODE="aws",
                CHROMA_SERVERLESS_CATALOG_TABLE=TABLE,
                CHROMA_SERVERLESS_RECORDS_URI=f"s3://{BUCKET}/records",
                CHROMA_SERVERLESS_AWS_ENDPOINT=self.endpoints[role],
                CHROMA_SERVERLESS_MAINTENANCE="off",
                CHROMA_SERVERLESS_LOG_FORMAT="json",
            )
            if self.token:
                env.update(CHROMA_SERVERLESS_AUTH="true", CHROMA_SERVERLESS_ADMIN_TOKEN=self.token)
        env.update(extra)
        return env

    def start(self) -> None:
        args = self.args
        if args.auth:
            self.token = uuid.uuid4().hex
        ready = self.workdir / "moto.ready"
        self.moto = self.spawn(
            "moto",
            self.script(
                "--moto-child",
                "--ready-file",
                str(ready),
                "--s3-latency-ms",
                str(args.s3_latency_ms),
                "--dynamodb-latency-ms",
                str(args.dynamodb_latency_ms),
                "--roles",
                ",".join([*(f"server{i}" for i in range(args.instances)), "maintenance", "import"]),
            ),
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            self.moto.check()
            if time.monotonic() > deadline:
                raise TimeoutError("moto did not start")
            time.sleep(0.05)
        self.endpoints = json.loads(ready.read_text())
        for i in range(args.instances):
            env = self.env(
                f"server{i}",
                CHROMA_SERVERLESS_PATH=str(self.workdir / f"instance{i}"),
                AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(args.memory_mb),
            )
            command = [sys.executable, "-m", "chroma_serverless.cli", "run"]
            command += ["--host", "127.0.0.1", "--port", "0"]
            self.servers.append(Server(self.spawn(f"server{i}", command, env)))
        control = self.workdir / "maintenance"
        control.mkdir()
        env = self.env(
            "maintenance",
            CHROMA_SERVERLESS_PATH=str(self.workdir / "maintenance-tmp"),
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(args.maintenance_memory_mb),
        )
        self.maintenance = self.spawn(
            "maintenance",
            self.script(
                "--maintenance-child",
                "--control-dir",
                str(control),
                "--maintain-every",
                str(args.maintain_every),
            ),
            env,
        )
        for server in self.servers:
            server.port = self.wait_listening(server.child, deadline)
        for server in self.servers:
            self.wait_heartbeat(server, deadline)

    def wait_listening(self, child: Child, deadline: float) -> int:
        while True:
            child.check()
            found = LISTENING.search(child.log.read_text(errors="replace"))
            if found:
                return int(found.group(1))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{child.name} did not start:\n{child.tail()}")
            time.sleep(0.05)

    def wait_heartbeat(self, server: Server, deadline: float) -> None:
        url = f"http://127.0.0.1:{server.port}/api/v2/heartbeat"
        while True:
            server.child.check()
            with contextlib.suppress(OSError), urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server.child.name} has no heartbeat")
            time.sleep(0.05)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    # ------------------------------------------------------------------ moto's counters

    def control(self, action: str, method: str = "GET") -> Any:
        request = Request(f"{self.endpoint}{CONTROL}{action}", method=method)
        with urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def reset_counts(self) -> None:
        self.control("reset", "POST")

    def counts(self) -> dict[str, Any]:
        counts: dict[str, Any] = self.control("counts")
        return counts

    # ------------------------------------------------------------------ maintenance

    @property
    def maintenance_dir(self) -> Path:
        return self.workdir / "maintenance"

    def pause_maintenance(self) -> float:
        """Stop the maintenance process between sweeps; seconds waited for a sweep to end."""
        assert self.maintenance is not None
        started = time.monotonic()
        token = uuid.uuid4().hex
        _write(self.maintenance_dir / "pause", token)
        while _read(self.maintenance_dir / "paused") != token:
            self.maintenance.check()
            if time.monotonic() - started > SWEEP_TIMEOUT_S:
                raise TimeoutError("the maintenance sweep did not end")
            time.sleep(0.1)
        return time.monotonic() - started

    def resume_maintenance(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.maintenance_dir / "pause").unlink()

    def sweeps(self) -> list[dict[str, Any]]:
        text = _read(self.maintenance_dir / "sweeps.jsonl") or ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_for_sweep(self, after: float) -> dict[str, Any]:
        """The first maintenance sweep that started at or after ``after`` (epoch s), once done."""
        assert self.maintenance is not None
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        while True:
            for sweep in self.sweeps():
                if sweep["started"] >= after:
                    return sweep
            self.maintenance.check()
            if time.monotonic() > deadline:
                raise TimeoutError("no maintenance sweep")
            time.sleep(0.2)

    # ------------------------------------------------------------------ clients and accounting

    def client(self, instance: int) -> ClientAPI:
        return http_client(self.servers[instance].port, self.token)

    def cpu(self) -> dict[str, float]:
        assert self.moto is not None and self.maintenance is not None
        return {
            "moto": cpu_seconds(self.moto.proc.pid),
            "servers": sum(cpu_seconds(s.child.proc.pid) for s in self.servers),
            "maintenance": cpu_seconds(self.maintenance.proc.pid),
        }

    def log_offsets(self) -> dict[str, int]:
        return {c.name: c.log.stat().st_size for c in self.children if c.log.exists()}

    def errors_since(self, offsets: dict[str, int], limit: int = 5) -> dict[str, Any]:
        """What the servers and the maintenance process logged at ERROR (or WARNING, as
        ``warnings``) since ``offsets``: per process, counts per message and exception (the
        traceback's last line), with the first few tracebacks' tails."""
        found: dict[str, Any] = {}
        for child in self.children:
            if not (child.name.startswith("server") or child.name == "maintenance"):
                continue
            with child.log.open("rb") as log:
                log.seek(offsets.get(child.name, 0))
                lines = log.read().decode(errors="replace").splitlines()
            summary: dict[str, Any] = {}
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict) or entry.get("level") not in ("ERROR", "WARNING"):
                    continue
                kind = "errors" if entry["level"] == "ERROR" else "warnings"
                exception = str(entry.get("exception") or "").strip().splitlines()
                message = re.sub(r"\(trace id \w+\)|[0-9a-f-]{36}", "…", str(entry.get("message")))
                last = exception[-1] if exception else ""
                last = re.sub(r"Attempted \d+ times", "Attempted N times", last)
                last = re.sub(r", /\S+\.rs:\d+:\d+$", "", last)  # the Rust source line
                key = f"{message} | {last}"[:400]
                bucket = summary.setdefault(kind, {"count": 0, "by_message": {}, "first": []})
                bucket["count"] += 1
                bucket["by_message"][key] = bucket["by_message"].get(key, 0) + 1
                if len(bucket["first"]) < limit:
                    bucket["first"].append("\n".join(exception[-12:])[-2500:] or line[:1500])
            if summary:
                found[child.name] = summary
        return found


def calibrate(endpoint: str, requests: int = 50) -> dict[str, Any]:
    """Round trips to moto from this process, one connection each (as moto's server closes
    every connection): a HEAD of a missing S3 object and a GetItem of a missing catalog item,
    raw HTTP (no SDK). What the injected latency amounts to, with moto's own time."""
    import http.client

    host, port = endpoint.removeprefix("http://").split(":")
    scope = "Credential=testing/20260101/us-east-1/{}/aws4_request, SignedHeaders=host, Signature=0"
    key = {"pk": {"S": "CALIBRATION"}, "sk": {"S": "CALIBRATION"}}
    probes = {
        "s3_head": ("HEAD", f"/{BUCKET}/calibration", None, {"Authorization": scope.format("s3")}),
        "dynamodb_get_item": (
            "POST",
            "/",
            json.dumps({"TableName": TABLE, "Key": key}),
            {
                "Authorization": scope.format("dynamodb"),
                "X-Amz-Target": "DynamoDB_20120810.GetItem",
                "Content-Type": "application/x-amz-json-1.0",
            },
        ),
    }
    out = {}
    for name, (method, path, body, headers) in probes.items():
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            connection.request(method, path, body=body, headers=headers)
            connection.getresponse().read()
            connection.close()
            samples.append(time.perf_counter() - started)
        out[name] = ms(samples)
    return out


@contextlib.contextmanager
def accounted(cluster: Cluster, result: dict[str, Any]) -> Iterator[None]:
    """Wall time, CPU seconds per process kind, the machine's busy CPU seconds and how many of
    them other processes (not this benchmark's) took, the load average, and logged errors of a
    scenario into ``result``."""
    offsets = cluster.log_offsets()
    cpu_before, machine_before, ours_before = cluster.cpu(), machine_busy(), own_cpu(cluster)
    load_before = os.getloadavg()
    started = time.perf_counter()
    try:
        yield
    finally:
        cpu_after, machine_after, ours_after = cluster.cpu(), machine_busy(), own_cpu(cluster)
        result["scenario_seconds"] = round(time.perf_counter() - started, 1)
        result["cpu_seconds"] = {k: round(cpu_after[k] - v, 1) for k, v in cpu_before.items()}
        busy = machine_after - machine_before
        result["machine_busy_cpu_seconds"] = round(busy, 1)
        result["foreign_cpu_seconds"] = round(max(0.0, busy - (ours_after - ours_before)), 1)
        result["load_average"] = {"before": load_before, "after": os.getloadavg()}
        result["logged_errors"] = cluster.errors_since(offsets)


def machine_busy() -> float:
    """CPU seconds processes on the machine have used (all cores; /proc/stat's user, nice
    and system time: not idle, iowait, interrupts or steal)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    return sum(fields) / os.sysconf("SC_CLK_TCK")


def own_cpu(cluster: Cluster) -> float:
    """CPU seconds of this benchmark: this process, its children that ended (writers, the
    import) and those still running (moto, servers, maintenance)."""
    import resource

    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        own += usage.ru_utime + usage.ru_stime
    running = [c for c in cluster.children if c.proc.poll() is None]
    return own + sum(cpu_seconds(c.proc.pid) for c in running)


def create(client: ClientAPI, name: str) -> Collection:
    return client.create_collection(name, configuration=CONFIGURATION, embedding_function=None)  # type: ignore[arg-type]


def open_collection(client: ClientAPI, name: str) -> Collection:
    return client.get_collection(name, embedding_function=None)


def add_rows(collection: Collection, vectors: np.ndarray, first: int, prefix: str) -> None:
    rows = range(first, first + len(vectors))
    collection.add(
        ids=[f"{prefix}{i}" for i in rows],
        embeddings=vectors,
        metadatas=[metadata(i) for i in rows],
    )


def load(collection: Collection, vectors: np.ndarray, batch: int, prefix: str) -> float:
    started = time.perf_counter()
    for start in range(0, len(vectors), batch):
        add_rows(collection, vectors[start : start + batch], start, prefix)
    return time.perf_counter() - started


def pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


# ---------------------------------------------------------------------------- single


def scenario_single(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    a, b = 0, 1 % args.instances
    vectors = synthetic.vectors(DATASET, args.rows + args.rounds * 10)
    preload, new = vectors[: args.rows], vectors[args.rows :]
    client_a, client_b = cluster.client(a), cluster.client(b)
    batch = client_a.get_max_batch_size()
    collection_a = create(client_a, "single")
    load_s = load(collection_a, preload, batch, "r")
    loaded = time.time()
    print(
        f"  loaded {args.rows} rows in {load_s:.1f} s; waiting for a maintenance sweep", flush=True
    )
    sweep = cluster.wait_for_sweep(loaded)
    collection_b = open_collection(client_b, "single")
    started = time.perf_counter()
    collection_b.query(query_embeddings=new[:1], n_results=K, include=INCLUDE)
    b_first = time.perf_counter() - started

    adds, queries, failures = [], [], []
    in_query = in_get = 0
    cluster.reset_counts()
    for k in range(args.rounds):
        first = args.rows + k * 10
        ids = [f"r{first + j}" for j in range(10)]
        started = time.perf_counter()
        try:
            add_rows(collection_a, new[k * 10 : (k + 1) * 10], first, "r")
        except Exception as exc:
            failures.append({"round": k, "error": type(exc).__name__, "message": str(exc)[:500]})
            continue
        adds.append(time.perf_counter() - started)
        started = time.perf_counter()
        found = collection_b.query(
            query_embeddings=new[k * 10 : k * 10 + 1], n_results=K, include=INCLUDE
        )
        queries.append(time.perf_counter() - started)
        in_query += ids[0] in found["ids"][0]
        got = collection_b.get(ids=ids, include=[])
        in_get += len(got["ids"]) == len(ids)
    rounds = len(adds)
    counts = cluster.counts()
    return {
        "rows": args.rows,
        "batch": batch,
        "load_s": round(load_s, 1),
        "load_records_per_s": round(args.rows / load_s, 1),
        "maintenance_sweep": {
            "seconds": round(sweep["finished"] - sweep["started"], 1),
            "waited_s": round(sweep["finished"] - loaded, 1),
            "reports": sweep.get("reports", sweep.get("error")),
        },
        "b_first_query_ms": round(1000 * b_first, 1),
        "rounds": args.rounds,
        "add_10": ms(adds),
        "query_after_write": ms(queries),
        "visible_in_query_pct": pct(in_query, rounds),
        "visible_in_get_pct": pct(in_get, rounds),
        "failed_adds": len(failures),
        "failures": failures[:FIRST_FAILURES],
        "moto": counts,
        "a_per_add": per_op(counts, f"server{a}", rounds),
        "b_per_query_and_get": per_op(counts, f"server{b}", rounds),
    }


# ---------------------------------------------------------------------------- writers


def scenario_writers(
    cluster: Cluster, args: argparse.Namespace, writers: int, vectors_file: Path
) -> dict[str, Any]:
    name = f"writers-{writers}"
    seed = synthetic.queries(DATASET, SEED_RECORDS, seed=1)
    add_rows(create(cluster.client(0), name), seed, 0, "seed-")
    ports = ",".join(str(s.port) for s in cluster.servers)
    children = []
    for w in range(writers):
        command = cluster.script(
            "--writer-child",
            "--ports", ports,
            "--collection", name,
            "--writer-index", str(w),
            "--adds", str(args.adds),
            "--add-size", str(args.add_size),
            "--vectors-file", str(vectors_file),
        )  # fmt: skip
        if cluster.token:
            command += ["--token", cluster.token]
        children.append(
            cluster.spawn(f"{name}-w{w}", command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        )
    deadline = time.monotonic() + START_TIMEOUT_S + writers * 5
    for child in children:
        if readline(child, deadline) != "ready":
            raise RuntimeError(f"{child.name} not ready:\n{child.tail()}")
    cluster.reset_counts()
    cpu_before, busy_before = cluster.cpu(), machine_busy()
    for child in children:  # go
        assert child.proc.stdin is not None
        child.proc.stdin.write(b"go\n")
        child.proc.stdin.flush()
    reports = []
    for child in children:
        line = readline(child, time.monotonic() + 3600)
        reports.append(json.loads(line))
    cpu_after, busy_after = cluster.cpu(), machine_busy()
    for child in children:
        child.proc.wait(STOP_TIMEOUT_S)
    counts = cluster.counts()

    adds = [add for report in reports for add in report["adds"]]
    ok = [add for add in adds if add["ok"]]
    failed = [add for add in adds if not add["ok"]]
    wall = max(a["end"] for a in adds) - min(a["start"] for a in adds)
    acknowledged = len(ok) * args.add_size

    def ids_of(add: dict[str, Any]) -> list[str]:
        prefix = add["ids"].rsplit("-", 1)[0]
        return [f"{prefix}-{i}" for i in range(args.add_size)]

    fresh = open_collection(cluster.client(0), name)
    count = fresh.count()
    missing = present_failed = 0
    for add in ok:
        missing += args.add_size - len(fresh.get(ids=ids_of(add), include=[])["ids"])
    for add in failed:
        present_failed += len(fresh.get(ids=ids_of(add), include=[])["ids"])
    by_error: dict[str, int] = defaultdict(int)
    for add in failed:
        by_error[f"{add['status']} {add['error']}"] += 1
    return {
        "writers": writers,
        "adds_per_writer": args.adds,
        "add_size": args.add_size,
        "adds": len(adds),
        "acknowledged_adds": len(ok),
        "failed_adds": len(failed),
        "failed_by_status_and_error": dict(by_error),
        "failures": [
            {k: add.get(k) for k in ("instance", "status", "error", "seconds")}
            | {"message": str(add.get("message"))[:800]}
            for add in failed[:FIRST_FAILURES]
        ],
        "wall_s": round(wall, 1),
        "records_per_s": round(acknowledged / wall, 1) if wall else None,
        "add": ms([a["seconds"] for a in ok]),
        "failed_add": ms([a["seconds"] for a in failed]),
        "adds_over_29s": sum(a["seconds"] > GATEWAY_TIMEOUT_S for a in adds),
        "seed_records": SEED_RECORDS,
        "acknowledged_records": acknowledged,
        "final_count": count,
        "expected_count": SEED_RECORDS + acknowledged,
        "count_matches": count == SEED_RECORDS + acknowledged,
        "acknowledged_ids_missing": missing,
        "failed_add_ids_present": present_failed,
        # CPU seconds from "go" to the last writer's report, per kind of process: what one
        # add costs the machine, and how busy the writes kept it (cores in use on average)
        "writes_cpu_seconds": {
            **{k: round(cpu_after[k] - v, 2) for k, v in cpu_before.items()},
            "writers": round(sum(r["cpu_s"] for r in reports), 2),
            "machine": round(busy_after - busy_before, 2),
        },
        "writes_cores_busy": round((busy_after - busy_before) / wall, 2) if wall else None,
        "moto": counts,
        # what the server instances sent (the maintenance process's requests are in "moto")
        "per_acknowledged_add": per_op(counts, "server", len(ok)),
        "maintenance_requests": per_op(counts, "maintenance", 1),
    }


def per_op(counts: dict[str, Any], role_prefix: str, ops: int) -> dict[str, Any]:
    """Requests per operation that processes whose role starts with ``role_prefix`` sent:
    totals per service and per service and kind."""
    kinds: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for role, services in counts["by_role"].items():
        if role.startswith(role_prefix):
            for service, by_kind in services.items():
                for kind, n in by_kind.items():
                    kinds[service][kind] += n
    ops = max(1, ops)
    return {
        "s3": round(sum(kinds["s3"].values()) / ops, 2),
        "dynamodb": round(sum(kinds["dynamodb"].values()) / ops, 2),
        "by_kind": {
            service: {kind: round(n / ops, 2) for kind, n in sorted(by_kind.items())}
            for service, by_kind in kinds.items()
        },
    }


def readline(child: Child, deadline: float) -> str:
    stream: IO[bytes] | None = child.proc.stdout
    assert stream is not None
    while True:
        readable, _, _ = select.select([stream], [], [], 1.0)
        if readable:
            return stream.readline().decode().strip()
        if child.proc.poll() is not None:
            return stream.readline().decode().strip()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{child.name}: no answer")


# ---------------------------------------------------------------------------- warm


def warm_parquet(rows: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = BENCH / "results" / "cache" / f"deployed_warm_{DATASET}_{rows}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    vectors = synthetic.vectors(DATASET, rows)
    ids = np.arange(rows)
    table = pa.table(
        {
            "id": pa.array([f"r{i}" for i in ids]),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM),
            "category": pa.array(ids % 10),
            "score": pa.array([metadata(int(i))["score"] for i in ids]),
        }
    )
    partial = path.with_suffix(".tmp")
    pq.write_table(table, partial, row_group_size=65_536)
    partial.rename(path)
    return path


def scenario_warm(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"rows": args.warm_rows}
    cold_instance = args.instances - 1
    source = warm_parquet(args.warm_rows)
    create(cluster.client(0), "warm")
    result["maintenance_pause_wait_s"] = round(cluster.pause_maintenance(), 1)
    command = [sys.executable, "-m", "chroma_serverless.cli", "import", str(source)]
    command += ["--collection", "warm", "--no-maintain", "--restart"]
    command += ["--state-dir", str(cluster.workdir / "import-state")]
    print(f"  importing {args.warm_rows} rows: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=cluster.env("import", CHROMA_SERVERLESS_PATH=str(cluster.workdir / "import-tmp")),
        capture_output=True,
        text=True,
    )
    result["load_s"] = round(time.perf_counter() - started, 1)
    if done.returncode == 0:
        result["load"] = "import"
        result["import_report"] = json.loads(done.stdout.strip().splitlines()[-1])
    else:
        result["load"] = "http (import failed)"
        result["import_error"] = (done.stderr or done.stdout)[-2000:]
        print(f"  import failed ({done.returncode}); loading over HTTP", flush=True)
        collection = open_collection(cluster.client(0), "warm")
        batch = cluster.client(0).get_max_batch_size()
        result["load_s"] = round(
            load(collection, synthetic.vectors(DATASET, args.warm_rows), batch, "r"), 1
        )
    result["load_records_per_s"] = round(args.warm_rows / result["load_s"], 1)

    print("  maintaining until indexed", flush=True)
    cluster.resume_maintenance()
    started = time.perf_counter()
    status_collection = open_collection(cluster.client(0), "warm")
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while True:
        status = status_collection.get_indexing_status()
        if status.num_unindexed_ops == 0:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"warm collection not indexed: {status}")
        time.sleep(2.0)
    result["indexed_after_s"] = round(time.perf_counter() - started, 1)
    result["indexing_status"] = {
        "num_indexed_ops": status.num_indexed_ops,
        "num_unindexed_ops": status.num_unindexed_ops,
    }
    sweep = cluster.wait_for_sweep(time.time())
    result["maintained_after_s"] = round(time.perf_counter() - started, 1)
    sweeps = [s for s in cluster.sweeps() if s["finished"] <= sweep["finished"]]
    result["maintenance_reports"] = [
        r
        for s in sweeps
        for r in s.get("reports", [])
        if r.get("collection") == str(status_collection.id)
    ][-5:]
    result["maintenance_pause_wait_s_2"] = round(cluster.pause_maintenance(), 1)

    queries, truth = synthetic.ground_truth(
        DATASET, args.warm_rows, COLD_QUERIES + args.warm_queries
    )
    found: list[list[int]] = []

    def query(collection: Collection, q: np.ndarray) -> float:
        started = time.perf_counter()
        answer = collection.query(query_embeddings=q[None], n_results=K, include=INCLUDE)
        spent = time.perf_counter() - started
        found.append([int(i[1:]) for i in answer["ids"][0]])
        return spent

    print(f"  cold instance {cold_instance}: {COLD_QUERIES} queries", flush=True)
    cluster.reset_counts()
    started = time.perf_counter()
    client = cluster.client(cold_instance)
    collection = open_collection(client, "warm")
    result["get_collection_ms"] = round(1000 * (time.perf_counter() - started), 1)  # client too
    cold = [query(collection, q) for q in queries[:COLD_QUERIES]]
    cold_counts = result["cold_phase_moto"] = cluster.counts()
    result["first_query_ms"] = round(1000 * cold[0], 1)
    result["queries_2_31"] = ms(cold[1:])
    print(f"  pause {args.warm_pause} s, then {args.warm_queries} warm queries", flush=True)
    time.sleep(args.warm_pause)
    cluster.reset_counts()
    warm = [query(collection, q) for q in queries[COLD_QUERIES:]]
    counts = cluster.counts()
    cluster.resume_maintenance()
    result["warm_queries"] = ms(warm)
    result["warm_moto"] = counts
    # the queried instance's requests (maintenance is paused; nothing else runs)
    result["per_warm_query"] = per_op(counts, f"server{cold_instance}", len(warm))
    result["per_cold_phase_query"] = per_op(cold_counts, f"server{cold_instance}", len(cold))
    result["recall_at_10"] = round(synthetic.recall_at_k(found, truth), 4)
    return result


# ---------------------------------------------------------------------------- report


def report(result: dict[str, Any]) -> str:
    meta, params = result["meta"], result["params"]

    def lat(s: dict[str, Any], keys: tuple[str, ...] = ("p50_ms", "p90_ms", "max_ms")) -> str:
        if not s.get("n"):
            return "-"
        return " / ".join(f"{s[k]:.0f}" for k in keys) + " ms"

    lines = [
        f"deployed request path @ {meta['git']['commit'][:10]}"
        f"{' (dirty)' if meta['git']['dirty'] else ''}: {params['instances']} instances "
        f"({params['memory_mb']} MB), moto +{params['s3_latency_ms']:g} ms S3 "
        f"+{params['dynamodb_latency_ms']:g} ms DynamoDB, "
        f"maintenance every {params['maintain_every']:g} s, "
        f"auth {'on' if params['auth'] else 'off'}; {meta['machine']['cpus']} cpus, "
        f"{meta['machine']['memory_mb'] / 1024:.0f} GB; {meta['total_s']:.0f} s",
    ]
    rows: list[tuple[str, str]] = []
    scenarios = result["scenarios"]
    if "single" in scenarios:
        s = scenarios["single"]
        rows += [
            (
                f"single: load {s['rows']} rows (batches of {s['batch']})",
                f"{s['load_s']} s, {s['load_records_per_s']} rec/s",
            ),
            ("single: maintenance sweep after the load", f"{s['maintenance_sweep']['seconds']} s"),
            ("single: B's first query (cold)", f"{s['b_first_query_ms']:.0f} ms"),
            (f"single: add 10 via A, p50/p90/max ({s['rounds']} rounds)", lat(s["add_10"])),
            (
                "single: query via B right after, p50/p90",
                lat(s["query_after_write"], ("p50_ms", "p90_ms")),
            ),
            (
                "single: new id visible in query / in get(ids)",
                f"{s['visible_in_query_pct']}% / {s['visible_in_get_pct']}%",
            ),
            ("single: failed adds", str(s["failed_adds"])),
        ]
    for key, w in scenarios.get("writers", {}).items():
        rows += [
            (
                f"writers {key}: records/s ({w['adds']} adds of {w['add_size']})",
                f"{w['records_per_s']} (wall {w['wall_s']} s)",
            ),
            (f"writers {key}: add p50/p90/max", lat(w["add"])),
            (
                f"writers {key}: failed adds",
                f"{w['failed_adds']} {w['failed_by_status_and_error'] or ''}".strip(),
            ),
            (f"writers {key}: adds over 29 s", str(w["adds_over_29s"])),
            (
                f"writers {key}: final count / expected",
                f"{w['final_count']} / {w['expected_count']} "
                f"(missing {w['acknowledged_ids_missing']}, "
                f"failed-but-present {w['failed_add_ids_present']})",
            ),
            (
                f"writers {key}: S3 / DynamoDB requests per add",
                f"{w['per_acknowledged_add']['s3']} / {w['per_acknowledged_add']['dynamodb']}",
            ),
        ]
    if "warm" in scenarios:
        s = scenarios["warm"]
        q = s["warm_queries"]
        rows += [
            (
                f"warm: load {s['rows']} rows ({s['load']})",
                f"{s['load_s']} s, {s['load_records_per_s']} rec/s",
            ),
            (
                "warm: indexed / maintained after",
                f"{s['indexed_after_s']} s / {s['maintained_after_s']} s",
            ),
            ("warm: first (cold) query", f"{s['first_query_ms']:.0f} ms"),
            ("warm: queries 2-31, p50", f"{s['queries_2_31']['p50_ms']:.0f} ms"),
            (f"warm: {q['n']} warm queries p50/p99", lat(q, ("p50_ms", "p99_ms"))),
            (
                "warm: S3 / DynamoDB requests per warm query",
                f"{s['per_warm_query']['s3']} / {s['per_warm_query']['dynamodb']}",
            ),
            ("warm: recall@10", str(s["recall_at_10"])),
        ]
    trip = result.get("moto_round_trip", {})
    if trip:
        rows.insert(
            0,
            (
                "moto round trip p50/p90, S3 HEAD / DynamoDB GetItem",
                f"{lat(trip['s3_head'], ('p50_ms', 'p90_ms'))} / "
                f"{lat(trip['dynamodb_get_item'], ('p50_ms', 'p90_ms'))}",
            ),
        )
    width = max(len(r[0]) for r in rows) if rows else 0
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    for key, w in scenarios.get("writers", {}).items():
        for failure in w["failures"][:3]:
            lines.append(
                f"  writers {key} failure: {failure['status']} {failure['error']}: "
                f"{failure['message'][:200]}"
            )
    named = [("single", scenarios.get("single"))]
    named += [(f"writers {k}", w) for k, w in scenarios.get("writers", {}).items()]
    named += [("warm", scenarios.get("warm"))]
    foreign = [
        f"{name} {scenario['foreign_cpu_seconds']} of {scenario['scenario_seconds']} s"
        for name, scenario in named
        if scenario and "foreign_cpu_seconds" in scenario
    ]
    if foreign:
        lines.append("  CPU seconds other processes took meanwhile: " + ", ".join(foreign))
    for name, scenario in named:
        for process, logged in (scenario or {}).get("logged_errors", {}).items():
            for message, count in list(logged.get("errors", {}).get("by_message", {}).items())[:3]:
                lines.append(f"  {name}: {process} logged {count} x ERROR {message[:300]}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--scenarios", default="single,writers,warm")
    parser.add_argument("--s3-latency-ms", type=float, default=20.0)
    parser.add_argument("--dynamodb-latency-ms", type=float, default=5.0)
    parser.add_argument(
        "--memory-mb", type=int, default=3008, help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
    )
    parser.add_argument("--maintenance-memory-mb", type=int, default=4096)
    parser.add_argument("--maintain-every", type=float, default=10.0)
    parser.add_argument("--auth", action="store_true", help="auth on, as the stack has it")
    parser.add_argument("--rows", type=int, default=10_000, help="single: preloaded records")
    parser.add_argument("--rounds", type=int, default=50, help="single: add/query rounds")
    parser.add_argument("--writers", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--adds", type=int, default=10, help="writers: adds per writer")
    parser.add_argument("--add-size", type=int, default=100, help="writers: records per add")
    parser.add_argument("--warm-rows", type=int, default=100_000)
    parser.add_argument("--warm-pause", type=float, default=60.0)
    parser.add_argument("--warm-queries", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, help="logs and control files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    # the children
    parser.add_argument("--moto-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    parser.add_argument("--roles", help=argparse.SUPPRESS)
    parser.add_argument("--maintenance-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--control-dir", help=argparse.SUPPRESS)
    parser.add_argument("--writer-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--collection", help=argparse.SUPPRESS)
    parser.add_argument("--writer-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--vectors-file", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.moto_child:
        return moto_child(args)
    if args.maintenance_child:
        return maintenance_child(args)
    if args.writer_child:
        return writer_child(args)

    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - {"single", "writers", "warm"}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    def interrupted(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, interrupted)
    started = time.perf_counter()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="deployed-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "git": git_rev(),
            "machine": machine(),
            "load_average_before": os.getloadavg(),
            "versions": {p: version(p) for p in ("chromadb", "lancedb", "moto", "werkzeug")},
            "env": {k: v for k, v in os.environ.items() if k.startswith("CHROMA_SERVERLESS_")},
        },
        "params": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if v is not None
            and not k.endswith("child")
            and k not in ("ready_file", "control_dir", "roles")
        },
        "scenarios": {},
    }
    cluster = Cluster(args, workdir)
    ok = False
    try:
        print(f"starting moto and {args.instances} servers (work dir {workdir}) ...", flush=True)
        cluster.start()
        result["meta"]["start_s"] = round(time.perf_counter() - started, 1)
        result["moto_round_trip"] = calibrate(cluster.endpoint)
        cluster.reset_counts()
        if "single" in scenarios:
            print(f"single: {args.rows} rows, {args.rounds} rounds ...", flush=True)
            single: dict[str, Any] = {}
            with accounted(cluster, single):
                single.update(scenario_single(cluster, args))
            result["scenarios"]["single"] = single
        if "writers" in scenarios:
            vectors_file = workdir / "writer_vectors.npy"
            np.save(
                vectors_file,
                synthetic.vectors(DATASET, max(args.writers) * args.adds * args.add_size),
            )
            result["scenarios"]["writers"] = {}
            for writers in args.writers:
                print(f"writers: {writers} x {args.adds} adds of {args.add_size} ...", flush=True)
                run: dict[str, Any] = {}
                with accounted(cluster, run):
                    run.update(scenario_writers(cluster, args, writers, vectors_file))
                result["scenarios"]["writers"][str(writers)] = run
        if "warm" in scenarios:
            print(f"warm: {args.warm_rows} rows ...", flush=True)
            warm: dict[str, Any] = {}
            with accounted(cluster, warm):
                warm.update(scenario_warm(cluster, args))
            result["scenarios"]["warm"] = warm
        result["maintenance_sweeps"] = [
            {
                "sweep": s["sweep"],
                "seconds": round(s["finished"] - s["started"], 1),
                "error": s.get("error"),
            }
            for s in cluster.sweeps()
        ]
        ok = True
    finally:
        cluster.stop()
        if not ok or args.keep:
            print(f"work dir kept: {workdir}", flush=True)
        elif args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    result["meta"]["load_average_after"] = os.getloadavg()
    result["meta"]["total_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(report(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
