"""Metrics: CloudWatch embedded metric format (EMF) documents on stdout, one per unit of work,
only when logs are JSON (CloudWatch extracts them from the function's log group)."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING

import orjson

from chroma_serverless.observe import context

if TYPE_CHECKING:
    from collections.abc import Iterator

NAMESPACE = "ChromaServerless"
SERVICE = "chroma-serverless"

# Every metric the code emits, with its unit. Dimensions stay few: never a tenant, database or
# collection (those are log keys and EMF metadata).
# Per request, by service, route ("POST /api/v2/.../{collection_id}/query") and status_class:
REQUESTS = "Requests"
LATENCY = "Latency"
RECORDS_WRITTEN = "RecordsWritten"
RECORDS_RETURNED = "RecordsReturned"
QUERY_TIME = "QueryTime"
EMBEDDING_TIME = "EmbeddingTime"
# Per execution environment, by service and function_name (as Powertools' own metric):
COLD_START = "ColdStart"
# Per maintained collection, by service:
MAINTENANCE_RUNS = "MaintenanceRuns"
MAINTENANCE_DURATION = "MaintenanceDuration"
MAINTENANCE_FAILURES = "MaintenanceFailures"
METRICS = {
    REQUESTS: "Count",
    LATENCY: "Milliseconds",
    RECORDS_WRITTEN: "Count",
    RECORDS_RETURNED: "Count",
    QUERY_TIME: "Milliseconds",
    EMBEDDING_TIME: "Milliseconds",
    COLD_START: "Count",
    MAINTENANCE_RUNS: "Count",
    MAINTENANCE_DURATION: "Milliseconds",
    MAINTENANCE_FAILURES: "Count",
}
# Log keys an EMF document carries as metadata (searchable in CloudWatch, never dimensions).
METADATA = ("trace_id", "correlation_id", "function_request_id", "collection")


def count(name: str, value: float) -> None:
    """Add a value of metric ``name`` to the current unit's document (if metrics are on)."""
    unit = context.current()
    if unit is not None and unit.metrics is not None:
        unit.metrics.setdefault(name, []).append(float(value))


@contextlib.contextmanager
def timed(name: str) -> Iterator[None]:
    """Add the block's duration in milliseconds as metric ``name``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        count(name, (time.perf_counter() - start) * 1000)


def emit(unit: context.Unit, **dimensions: str) -> None:
    """Write ``unit``'s metrics as one EMF document on stdout, with ``dimensions``: the document
    Powertools' ``AmazonCloudWatchEMFProvider`` writes, built without its per-metric
    validation, which cost more than the rest of a request's telemetry."""
    metrics = unit.metrics
    if not metrics:
        return
    dimensions["service"] = SERVICE
    definition = {
        "Namespace": NAMESPACE,
        "Dimensions": [list(dimensions)],
        "Metrics": [{"Name": name, "Unit": METRICS[name]} for name in metrics],
    }
    document = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [definition]},
        **dimensions,
        **{key: unit.keys[key] for key in METADATA if key in unit.keys},
        **metrics,
    }
    unit.metrics = {}
    print(orjson.dumps(document).decode(), file=sys.stdout, flush=True)


def emit_cold_start(function_name: str) -> None:
    """The ``ColdStart`` metric, in a document of its own (its dimensions are the function's)."""
    with context.unit({}) as unit:
        count(COLD_START, 1)
        emit(unit, function_name=function_name)


@contextlib.contextmanager
def maintenance_run(collection_id: str) -> Iterator[None]:
    """One collection's maintenance: its log keys, and a run, its duration and whether it
    failed (the exception propagates) as metrics."""
    with context.unit({"collection": collection_id}) as unit:
        start, failed = time.perf_counter(), 0
        try:
            yield
        except BaseException:
            failed = 1
            raise
        finally:
            count(MAINTENANCE_RUNS, 1)
            count(MAINTENANCE_DURATION, (time.perf_counter() - start) * 1000)
            count(MAINTENANCE_FAILURES, failed)
            emit(unit)
