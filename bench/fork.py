"""Forks on moto's S3: how long forking a large collection takes and what it writes.

    python bench/fork.py [--rows 100000] [--forks 5] [--no-index] [--out FILE]

Runs moto's server in this process behind ``s3_requests.py``'s counting middleware, with the AWS
layout on it: the DynamoDB catalog and LanceDB tables in ``s3://bench/records``, through
:class:`chroma_serverless.service.service.Service` as the data function builds it. Builds a
collection of ``--rows`` x 384 random vectors with metadata (adds of 5000), indexes it as
maintenance does (IVF-PQ from ``IndexPolicy.threshold`` rows), then forks it ``--forks`` times with
``Service.fork_collection`` (catalog transaction, tag in the source, shallow clone), timing each
fork and counting its requests: S3 by kind, with bytes, and DynamoDB.

Then it checks what a fork relies on, with the last fork: every object under the fork's own
prefix (no data file may be among them); the fork answers a query as the source did at fork
time after the source gets 5000 more rows and is maintained with zero retention (compaction and
cleanup of every older version), after the source is deleted, and after the fork's own writes
and zero-retention maintenance.

Prints a summary and writes ``bench/results/fork.json``. moto answers from memory on localhost,
so times are a lower bound for real S3 (tens of ms per request); request counts carry over.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
import warnings
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from s3_requests import (  # noqa: E402
    BUCKET,
    CREDENTIALS,
    PREFIX,
    Counter,
    CountingMoto,
    s3_client,
)

if TYPE_CHECKING:
    from chroma_serverless.service.service import Service
    from chroma_serverless.types import Collection

RESULTS = Path(__file__).resolve().parent / "results" / "fork.json"
DIM = 384
ADD_BATCH = 5000
LATER_ROWS = 5000
TENANT, DATABASE = "default_tenant", "default_database"


def build_service(endpoint: str) -> Service:
    """The data function's service on moto: DynamoDB catalog, LanceDB on S3."""
    import boto3

    from chroma_serverless.catalog.dynamodb.keys import ATTRIBUTES, KEY_SCHEMA
    from chroma_serverless.settings import Settings
    from chroma_serverless.wiring import build_service as build

    table = f"catalog-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1").create_table(
        TableName=table,
        KeySchema=KEY_SCHEMA,  # type: ignore[arg-type]
        AttributeDefinitions=ATTRIBUTES,  # type: ignore[arg-type]
        BillingMode="PAY_PER_REQUEST",
    )
    s3_client(endpoint).create_bucket(Bucket=BUCKET)
    settings = Settings(
        mode="aws",
        catalog_table=table,
        records_uri=f"s3://{BUCKET}/{PREFIX}",
        aws_endpoint=endpoint,
    )
    return build(settings)


def fill(service: Service, collection: Collection, rows: int, start: int = 0) -> None:
    from chroma_serverless.types import RecordBatch

    rng = np.random.default_rng([7, start])
    for first in range(start, start + rows, ADD_BATCH):
        ids = [f"r{i}" for i in range(first, min(first + ADD_BATCH, start + rows))]
        service.add(
            collection,
            RecordBatch(
                ids=ids,
                embeddings=rng.normal(size=(len(ids), DIM)).astype(np.float32),
                metadatas=[{"category": i % 10, "tag": f"t{i % 100}"} for i in range(len(ids))],
            ),
        )


def answer(service: Service, collection: Collection) -> tuple[int, list[str]]:
    """The collection's row count and its 10 nearest ids to a fixed query."""
    from chroma_serverless.types import QueryRequest

    query = np.random.default_rng(42).normal(size=(1, DIM)).astype(np.float32)
    result = service.query(collection, QueryRequest(embeddings=query, n_results=10))
    return service.count(collection), result.ids[0]


def requests_of(counter: Counter, phase: str) -> dict[str, Any]:
    """The phase's requests: DynamoDB (moto's ``/`` path) apart from S3, S3 by kind."""
    s3: dict[str, dict[str, int]] = defaultdict(lambda: {"requests": 0, "bytes_in": 0})
    dynamodb = 0
    for entry in counter.log.get(phase, []):
        if entry["path"] == "/":
            dynamodb += 1
            continue
        s3[entry["kind"]]["requests"] += 1
    for kind, stats in counter.stats.get(phase, {}).items():
        if kind in s3:
            s3[kind]["bytes_in"] = stats["bytes_in"]
    writes = [e["path"] for e in counter.log.get(phase, []) if e["method"] == "PUT"]
    return {"dynamodb": dynamodb, "s3": dict(s3), "s3_puts": writes}


def objects_under(endpoint: str, prefix: str) -> dict[str, int]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2")
    return {
        obj["Key"].removeprefix(prefix): int(obj["Size"])
        for page in pages.paginate(Bucket=BUCKET, Prefix=prefix)
        for obj in page.get("Contents", [])
    }


def run(args: argparse.Namespace, moto: CountingMoto) -> dict[str, Any]:
    import dataclasses

    from chroma_serverless.service.maintenance import maintain
    from chroma_serverless.types import RecordBatch

    service = build_service(moto.endpoint)
    moto.counter.set_phase("build")
    source = service.create_collection(TENANT, DATABASE, "source", None, None, False)
    started = time.perf_counter()
    print(f"adding {args.rows} x {DIM} on moto S3 ...", flush=True)
    fill(service, source, args.rows)
    build: dict[str, Any] = {"add_s": time.perf_counter() - started}
    if args.index:
        print("indexing (IVF-PQ, scalar indexes, compaction) ...", flush=True)
        started = time.perf_counter()
        build["maintain"] = maintain(service, source.id)
        build["maintain_s"] = time.perf_counter() - started
    source = service.catalog.get_collection_by_id(source.id)
    at_fork = answer(service, source)
    source_prefix = f"{PREFIX}/{source.id}.lance/"
    source_objects = objects_under(moto.endpoint, source_prefix)

    forks: list[dict[str, Any]] = []
    fork = source
    for n in range(args.forks):
        phase = f"fork-{n}"
        moto.counter.set_phase(phase)
        started = time.perf_counter()
        fork = service.fork_collection(TENANT, DATABASE, source.id, f"fork-{n}")
        took = time.perf_counter() - started
        moto.counter.set_phase("check")
        written = objects_under(moto.endpoint, f"{PREFIX}/{fork.id}.lance/")
        forks.append(
            {
                "seconds": took,
                "requests": requests_of(moto.counter, phase),
                "objects_written": written,
                "bytes_written": sum(written.values()),
                "data_files_written": sum(1 for key in written if key.startswith("data/")),
            }
        )
        print(f"fork {n}: {took * 1000:.0f} ms, {len(written)} objects written", flush=True)

    print("checking the last fork through the source's upkeep and deletion ...", flush=True)
    checks: dict[str, Any] = {"at_fork": at_fork}
    checks["after_fork"] = answer(service, fork)
    fill(service, source, LATER_ROWS, start=args.rows)
    store: Any = service.records
    store.policy = dataclasses.replace(store.policy, retention_seconds=0, fragment_target=1)
    checks["source_maintain"] = maintain(service, source.id)
    checks["after_source_maintain"] = answer(service, fork)
    checks["source_rows_after_maintain"] = service.count(source)
    service.delete_collection(TENANT, DATABASE, "source")
    checks["source_objects_kept_after_delete"] = len(objects_under(moto.endpoint, source_prefix))
    checks["after_source_delete"] = answer(service, fork)
    service.add(fork, RecordBatch(ids=["new"], embeddings=np.ones((1, DIM), np.float32)))
    checks["fork_maintain"] = maintain(service, fork.id)
    checks["after_fork_writes_and_maintain"] = answer(service, fork)
    checks["fork_survived"] = (
        checks["after_fork"]
        == checks["after_source_maintain"]
        == checks["after_source_delete"]
        == at_fork
        and checks["after_fork_writes_and_maintain"][0] == args.rows + 1
    )
    seconds = [f["seconds"] for f in forks]
    return {
        "build": build,
        "source_objects": {"count": len(source_objects), "bytes": sum(source_objects.values())},
        "forks": forks,
        "fork_seconds": {
            "min": min(seconds),
            "median": statistics.median(seconds),
            "max": max(seconds),
        },
        "max_data_files_written": max(f["data_files_written"] for f in forks),
        "checks": checks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--forks", type=int, default=5)
    parser.add_argument("--no-index", dest="index", action="store_false")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for key, value in CREDENTIALS.items():
        os.environ.setdefault(key, value)
    # Zero retention on purpose (the fork must survive it); LanceDB warns about other readers.
    warnings.filterwarnings("ignore", r"optimize\(cleanup_older_than=0\)", UserWarning)
    started = time.perf_counter()
    moto = CountingMoto()
    try:
        result = run(args, moto)
    finally:
        moto.stop()
    result["meta"] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": args.rows,
        "dimension": DIM,
        "indexed": args.index,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "load_average": os.getloadavg(),
        "total_s": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    fork_ms = {k: round(v * 1000) for k, v in result["fork_seconds"].items()}
    print(f"fork of {args.rows} rows: {fork_ms} ms over {args.forks} forks")
    print(
        f"data files written per fork: {result['max_data_files_written']}; "
        f"objects: {[len(f['objects_written']) for f in result['forks']]}; "
        f"bytes: {[f['bytes_written'] for f in result['forks']]}"
    )
    print(f"fork survived the source's maintain and delete: {result['checks']['fork_survived']}")
    print(f"wrote {args.out}")
    return 0 if result["checks"]["fork_survived"] and not result["max_data_files_written"] else 1


if __name__ == "__main__":
    sys.exit(main())
