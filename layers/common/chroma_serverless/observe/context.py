"""The unit of work being served (a request, an invocation, a maintenance run): its log keys and
its metrics, carried by a context variable; and what :func:`~.setup.configure` set up for the
process. Nothing here ever sees a request body, a record or a credential."""

from __future__ import annotations

import contextlib
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterator, Mapping

    from aws_lambda_powertools import Tracer


@dataclass
class Process:
    """What :func:`~.setup.configure` set up; one per process (a Lambda execution environment)."""

    metrics: bool = False
    tracer: Tracer | None = None
    cold: bool = True
    handler: logging.Handler | None = None


process = Process()


@dataclass
class Unit:
    """The request or maintenance run being served: its log keys and its metrics."""

    keys: dict[str, Any]
    metrics: dict[str, list[float]] | None = None  # values by metric name, when metrics are on


_current: ContextVar[Unit | None] = ContextVar("chroma_serverless_unit", default=None)


def current() -> Unit | None:
    return _current.get()


def begin(keys: Mapping[str, Any]) -> Unit:
    """Start a unit of work (a request) for the rest of the current asyncio task or thread:
    ``keys`` on every log line and, when metrics are on, an EMF document to fill and
    :func:`~.metrics.emit`. A request is never ended: ASGI servers (uvicorn, Mangum) serve each
    in a task of its own, whose context dies with it, and Starlette's last-resort error handler,
    which runs after the middleware has returned, still logs and answers under the request's
    keys."""
    unit = _new(keys)
    _current.set(unit)
    return unit


def bind(keys: Mapping[str, Any]) -> None:
    """Add ``keys`` to the current unit's, ahead of the ones it has (a request's route, once
    routing has found it)."""
    unit = _current.get()
    if unit is not None:
        unit.keys = {**keys, **unit.keys}


@contextlib.contextmanager
def unit(keys: Mapping[str, Any]) -> Iterator[Unit]:
    """A unit of work for the block (an invocation, a maintenance run): ``keys`` added to the
    enclosing unit's."""
    outer = _current.get()
    inner = _new({**(outer.keys if outer else {}), **keys})
    token = _current.set(inner)
    try:
        yield inner
    finally:
        _current.reset(token)


def _new(keys: Mapping[str, Any]) -> Unit:
    return Unit(dict(keys), {} if process.metrics else None)


def trace_id() -> str:
    """The current request's ``chroma-trace-id``, or a fresh one outside a request."""
    unit = _current.get()
    traced = unit.keys.get("trace_id") if unit is not None else None
    return traced or uuid.uuid4().hex
