"""Traces: X-Ray subsegments, only on Lambda (Powertools' Tracer, set up by
:func:`~.setup.configure`); elsewhere no-ops that do not even import the X-Ray SDK."""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Any, TypeVar, cast

from chroma_serverless.observe.context import process

if TYPE_CHECKING:
    from collections.abc import Iterator

T = TypeVar("T")


@contextlib.contextmanager
def segment(name: str) -> Iterator[None]:
    """An X-Ray subsegment ``## name`` around the block, on Lambda with tracing on."""
    if process.tracer is None:
        yield
        return
    with process.tracer.provider.in_subsegment(f"## {name}"):
        yield


def traced(target: T, name: str) -> T:
    """``target`` with a subsegment ``## name.method`` around each public method call, when
    tracing is on; ``target`` itself otherwise."""
    if process.tracer is None:
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
