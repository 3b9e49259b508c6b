"""API Gateway events for the Lambda-edge tests, from the captures in ``tests/events/``.

``rest.json`` (REST API, payload v1 proxy) and ``http.json`` (HTTP API, payload v2.0) are kept
exactly as generated, once, by AWS SAM CLI 1.170.0::

    sam local generate-event apigateway aws-proxy --method GET --path api/v2/heartbeat
    sam local generate-event apigateway http-api-proxy --method GET --path api/v2/heartbeat

:func:`load_event` deep-copies one and points it at a request, filling in every field API Gateway
would, so no stale captured value (``multiValueHeaders``, ``rawPath``,
``requestContext.http.method``...) can override what a test asks for.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from tests.support.paths import EVENTS, FUNCTIONS

if TYPE_CHECKING:
    from types import ModuleType


Kind = Literal["rest", "http"]
KINDS: tuple[Kind, ...] = ("rest", "http")


@cache
def _captured(kind: Kind) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{kind}.json").read_text())
    return event


def load_event(
    kind: Kind,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str | list[str]] | None = None,
    *,
    base64_body: bool = False,
) -> dict[str, Any]:
    """A copy of the captured ``kind`` event for ``method path?query``.

    ``body``: ``None`` (no body), ``str``/``bytes`` (sent as is) or anything else (sent as JSON,
    with ``Content-Type: application/json`` unless ``headers`` says otherwise).
    ``base64_body`` sends it base64-encoded with ``isBase64Encoded: true``, as API Gateway does
    for binary media types (REST) or non-text payloads (HTTP API).
    ``headers`` are added to the captured ones (a same-named captured header is replaced).
    """
    event = copy.deepcopy(_captured(kind))
    method = method.upper()
    raw = _encode(body)
    sent_headers = dict(headers or {})
    if raw is not None and not isinstance(body, str | bytes):
        if not any(k.lower() == "content-type" for k in sent_headers):
            sent_headers["Content-Type"] = "application/json"
    if raw is None:
        text, is_base64 = None, False
    elif base64_body:
        text, is_base64 = base64.b64encode(raw).decode(), True
    else:
        text, is_base64 = raw.decode(), False
    event["isBase64Encoded"] = is_base64
    if kind == "rest":
        _rest(event, method, path, text, sent_headers, query or {})
    else:
        _http(event, method, path, text, sent_headers, query or {})
    return event


def _encode(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def _rest(
    event: dict[str, Any],
    method: str,
    path: str,
    body: str | None,
    headers: dict[str, str],
    query: dict[str, str | list[str]],
) -> None:
    """Payload v1: ``path`` has no stage; ``requestContext.path`` has it (``/prod/api/v2/...``)."""
    event["httpMethod"] = method
    event["path"] = path
    event["body"] = body
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    replaced = {k.lower() for k in headers}
    merged = {k: v for k, v in event["headers"].items() if k.lower() not in replaced}
    merged.update(headers)
    event["headers"] = merged
    # API Gateway sends both maps, and Mangum lets multiValueHeaders override headers; the captured
    # ones are stale (their Host even differs from headers'), so mirror what was set instead.
    event["multiValueHeaders"] = {k: [v] for k, v in merged.items()}
    multi = {k: v if isinstance(v, list) else [v] for k, v in query.items()}
    event["queryStringParameters"] = {k: v[-1] for k, v in multi.items()} or None
    event["multiValueQueryStringParameters"] = multi or None
    context = event["requestContext"]
    context["httpMethod"] = method
    context["path"] = f"/{context['stage']}{path}"
    context["requestId"] = str(uuid.uuid4())


def _http(
    event: dict[str, Any],
    method: str,
    path: str,
    body: str | None,
    headers: dict[str, str],
    query: dict[str, str | list[str]],
) -> None:
    """Payload v2.0: Mangum routes on ``requestContext.http.path``; ``rawPath`` must agree."""
    event["rawPath"] = path
    pairs = [(k, item) for k, v in query.items() for item in (v if isinstance(v, list) else [v])]
    event["rawQueryString"] = urlencode(pairs)
    if query:
        event["queryStringParameters"] = {
            k: ",".join(v) if isinstance(v, list) else v for k, v in query.items()
        }
    else:
        event.pop("queryStringParameters", None)
    if body is None:
        event.pop("body", None)
    else:
        event["body"] = body
    # HTTP API lower-cases header names and joins repeated ones with commas.
    event["headers"] = {
        **{k.lower(): v for k, v in event["headers"].items()},
        **{k.lower(): v for k, v in headers.items()},
    }
    context = event["requestContext"]
    context["http"]["method"] = method
    context["http"]["path"] = path
    context["requestId"] = str(uuid.uuid4())


@dataclass
class FakeLambdaContext:
    """What Lambda passes as ``context``; Mangum only stores it in ``scope["aws.context"]``."""

    function_name: str = "chroma-serverless-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:chroma-serverless-test"
    )
    log_group_name: str = "/aws/lambda/chroma-serverless-test"
    log_stream_name: str = "2024/01/01/[$LATEST]0123456789abcdef"
    remaining_time_in_millis: int = 29_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_time_in_millis


def load_function(name: str) -> ModuleType:
    """``functions/<name>/app.py`` imported afresh, as Lambda's INIT would (``functions/`` is not
    a package): every call builds a new module, with the environment as it is now."""
    spec = importlib.util.spec_from_file_location(
        f"function_{name}_{uuid.uuid4().hex}", FUNCTIONS / name / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
