"""Logs, metrics and traces, configured once per process with aws-lambda-powertools.

Logs: every ``chroma_serverless`` logger, as text (the local default, on stderr) or as
Powertools' JSON (on stdout, as on Lambda), each line carrying the keys of the unit of work (a
request, an invocation, a maintenance run) it belongs to. Metrics: CloudWatch embedded metric
format (EMF) documents on stdout, one per unit, only when logs are JSON (CloudWatch extracts them
from the function's log group). Traces: X-Ray subsegments, only on Lambda (Powertools' Tracer;
elsewhere a no-op that does not even import the X-Ray SDK). Nothing here ever sees a request
body, a record or a credential.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from aws_lambda_powertools import Tracer

    from chroma_serverless.settings import Settings

T = TypeVar("T")

NAMESPACE = "ChromaServerless"
SERVICE = "chroma-serverless"
LOGGER = "chroma_serverless"

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


@dataclass
class _Process:
    """What :func:`configure` set up; one per process (a Lambda execution environment)."""

    metrics: bool = False
    tracer: Tracer | None = None
    cold: bool = True
    handler: logging.Handler | None = None


_process = _Process()


@dataclass
class Unit:
    """The request or maintenance run being served: its log keys and its metrics."""

    keys: dict[str, Any]
    metrics: dict[str, list[float]] | None = None  # values by metric name, when metrics are on


_current: ContextVar[Unit | None] = ContextVar("chroma_serverless_unit", default=None)


def configure(settings: Settings) -> None:
    """Set up logs, metrics and tracing for this process (Lambda's INIT, the CLI): a fresh
    cold start, and the handler of the ``chroma_serverless`` loggers replaced."""
    logger = logging.getLogger(LOGGER)
    if _process.handler is not None:
        logger.removeHandler(_process.handler)
    json_logs = settings.log_format == "json"
    handler = _Console("stdout" if json_logs else "stderr")
    handler.setFormatter(
        LambdaPowertoolsFormatter(service=SERVICE, name="%(name)s") if json_logs else _Text()
    )
    handler.addFilter(_bound_keys)
    logger.addHandler(handler)
    logger.setLevel(settings.log_level.upper())
    # JSON lines are the only ones: on Lambda the runtime's root handler would print each again.
    logger.propagate = not json_logs
    if sys.version_info >= (3, 12):  # no "taskName": "Task-7" on the lines of a request
        logging.logAsyncioTasks = False
    _process.handler, _process.metrics, _process.cold = handler, json_logs, True
    _process.tracer = None
    if settings.tracing:  # only on Lambda: the X-Ray SDK is imported for nothing elsewhere
        from aws_lambda_powertools import Tracer

        _process.tracer = Tracer(service=SERVICE, auto_patch=False)


def take_cold_start() -> bool:
    """True for the first invocation since :func:`configure` (Lambda's INIT), then False.
    AWS calls are traced from then on: X-Ray discards (with a warning) what INIT sends."""
    cold, _process.cold = _process.cold, False
    if cold and _process.tracer is not None:
        _process.tracer.patch(["botocore"])
    return cold


# ------------------------------------------------------------------ units of work


def begin(keys: Mapping[str, Any]) -> Unit:
    """Start a unit of work (a request) for the rest of the current asyncio task or thread:
    ``keys`` on every log line and, when metrics are on, an EMF document to fill and
    :func:`emit`. A request is never ended: ASGI servers (uvicorn, Mangum) serve each in a task
    of its own, whose context dies with it, and Starlette's last-resort error handler, which
    runs after the middleware has returned, still logs and answers under the request's keys."""
    current = _new(keys)
    _current.set(current)
    return current


def bind(keys: Mapping[str, Any]) -> None:
    """Add ``keys`` to the current unit's, ahead of the ones it has (a request's route, once
    routing has found it)."""
    current = _current.get()
    if current is not None:
        current.keys = {**keys, **current.keys}


@contextlib.contextmanager
def unit(keys: Mapping[str, Any]) -> Iterator[Unit]:
    """A unit of work for the block (an invocation, a maintenance run): ``keys`` added to the
    enclosing unit's."""
    outer = _current.get()
    current = _new({**(outer.keys if outer else {}), **keys})
    token = _current.set(current)
    try:
        yield current
    finally:
        _current.reset(token)


def _new(keys: Mapping[str, Any]) -> Unit:
    return Unit(dict(keys), {} if _process.metrics else None)


def trace_id() -> str:
    """The current request's ``chroma-trace-id``, or a fresh one outside a request."""
    current = _current.get()
    traced = current.keys.get("trace_id") if current is not None else None
    return traced or uuid.uuid4().hex


def count(name: str, value: float) -> None:
    """Add a value of metric ``name`` to the current unit's document (if metrics are on)."""
    current = _current.get()
    if current is not None and current.metrics is not None:
        current.metrics.setdefault(name, []).append(float(value))


@contextlib.contextmanager
def timed(name: str) -> Iterator[None]:
    """Add the block's duration in milliseconds as metric ``name``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        count(name, (time.perf_counter() - start) * 1000)


def emit(current: Unit, **dimensions: str) -> None:
    """Write ``current``'s metrics as one EMF document on stdout, with ``dimensions``: the
    document Powertools' ``AmazonCloudWatchEMFProvider`` writes, built without its per-metric
    validation, which cost more than the rest of a request's telemetry."""
    metrics = current.metrics
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
        **{key: current.keys[key] for key in METADATA if key in current.keys},
        **metrics,
    }
    current.metrics = {}
    print(orjson.dumps(document).decode(), file=sys.stdout, flush=True)


def emit_cold_start(function_name: str) -> None:
    """The ``ColdStart`` metric, in a document of its own (its dimensions are the function's)."""
    with unit({}) as current:
        count(COLD_START, 1)
        emit(current, function_name=function_name)


def lambda_keys(context: Any) -> dict[str, Any]:
    """Powertools' log keys for a Lambda invocation, from its context object (if any)."""
    if context is None:
        return {}
    return {
        "function_name": context.function_name,
        "function_request_id": context.aws_request_id,
        "cold_start": take_cold_start(),
    }


@contextlib.contextmanager
def invocation(context: Any) -> Iterator[Unit]:
    """A Lambda invocation outside the HTTP app (the maintenance function)."""
    with unit(lambda_keys(context)) as current:
        if current.keys.get("cold_start"):
            emit_cold_start(context.function_name)
        yield current


@contextlib.contextmanager
def maintenance_run(collection_id: str) -> Iterator[None]:
    """One collection's maintenance: its log keys, and a run, its duration and whether it
    failed (the exception propagates) as metrics."""
    with unit({"collection": collection_id}) as current:
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
            emit(current)


# ------------------------------------------------------------------ tracing


@contextlib.contextmanager
def segment(name: str) -> Iterator[None]:
    """An X-Ray subsegment ``## name`` around the block, on Lambda with tracing on."""
    if _process.tracer is None:
        yield
        return
    with _process.tracer.provider.in_subsegment(f"## {name}"):
        yield


def traced(target: T, name: str) -> T:
    """``target`` with a subsegment ``## name.method`` around each public method call, when
    tracing is on; ``target`` itself otherwise."""
    if _process.tracer is None:
        return target
    return cast("T", _Traced(target, name))


class _Traced:
    def __init__(self, target: object, name: str) -> None:
        self._target = target
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._target, attribute)
        if attribute.startswith("_") or not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with segment(f"{self._name}.{attribute}"):
                return value(*args, **kwargs)

        return call


# ------------------------------------------------------------------ log lines


def _bound_keys(record: logging.LogRecord) -> bool:
    """The current unit's keys on ``record`` (a handler filter: every line gets them)."""
    current = _current.get()
    if current is not None:
        for key, value in current.keys.items():
            if not hasattr(record, key):
                setattr(record, key, value)
    return True


class _Console(logging.Handler):
    """Writes to ``sys.stdout``/``sys.stderr`` as they are when a line is written (so a
    replaced stream, such as a test's capture, gets it)."""

    def __init__(self, stream: str) -> None:
        super().__init__()
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = getattr(sys, self._stream)
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class _Text(logging.Formatter):
    """``time LEVEL logger: message [key=value ...]`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = [f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD]
        if not extra:
            return line
        first, newline, rest = line.partition("\n")  # keys before any traceback
        return f"{first} [{' '.join(extra)}]{newline}{rest}"
