"""Logs, metrics and traces configured once per process (Lambda's INIT, the CLI) with
aws-lambda-powertools; and the keys of a Lambda invocation."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from chroma_serverless.observe import context, logs, metrics

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chroma_serverless.settings import Settings


def configure(settings: Settings) -> None:
    """Set up logs, metrics and tracing for this process: a fresh cold start, and the handler of
    the ``chroma_serverless`` loggers replaced."""
    process = context.process
    logger = logging.getLogger(logs.LOGGER)
    if process.handler is not None:
        logger.removeHandler(process.handler)
    json_logs = settings.log_format == "json"
    handler = logs.Console("stdout" if json_logs else "stderr")
    handler.setFormatter(
        LambdaPowertoolsFormatter(service=metrics.SERVICE, name="%(name)s")
        if json_logs
        else logs.Text()
    )
    handler.addFilter(logs.bound_keys)
    logger.addHandler(handler)
    logger.setLevel(settings.log_level.upper())
    # JSON lines are the only ones: on Lambda the runtime's root handler would print each again.
    logger.propagate = not json_logs
    if sys.version_info >= (3, 12):  # no "taskName": "Task-7" on the lines of a request
        logging.logAsyncioTasks = False
    process.handler, process.metrics, process.cold = handler, json_logs, True
    process.tracer = None
    if settings.tracing:  # only on Lambda: the X-Ray SDK is imported for nothing elsewhere
        from aws_lambda_powertools import Tracer

        process.tracer = Tracer(service=metrics.SERVICE, auto_patch=False)


def take_cold_start() -> bool:
    """True for the first invocation since :func:`configure` (Lambda's INIT), then False.
    AWS calls are traced from then on: X-Ray discards (with a warning) what INIT sends."""
    process = context.process
    cold, process.cold = process.cold, False
    if cold and process.tracer is not None:
        process.tracer.patch(["botocore"])
    return cold


def lambda_keys(lambda_context: Any) -> dict[str, Any]:
    """Powertools' log keys for a Lambda invocation, from its context object (if any)."""
    if lambda_context is None:
        return {}
    return {
        "function_name": lambda_context.function_name,
        "function_request_id": lambda_context.aws_request_id,
        "cold_start": take_cold_start(),
    }


@contextlib.contextmanager
def invocation(lambda_context: Any) -> Iterator[context.Unit]:
    """A Lambda invocation outside the HTTP app (the maintenance function)."""
    with context.unit(lambda_keys(lambda_context)) as unit:
        if unit.keys.get("cold_start"):
            metrics.emit_cold_start(lambda_context.function_name)
        yield unit
