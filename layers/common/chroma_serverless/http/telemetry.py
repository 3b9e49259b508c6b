"""The ASGI middleware that observes each request: its ``chroma-trace-id`` (on every response,
and on every log line with the route, tenant, database and collection), an access line, and
one EMF document (requests and latency by route template and status class)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from starlette.routing import Match, Route

from chroma_serverless.observe import context, metrics, setup

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from starlette.requests import Request
    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("chroma_serverless.requests")

TRACE_HEADER = b"chroma-trace-id"
ROUTE = "route"
UNMATCHED = "unmatched"  # never the raw path: metric dimensions must stay few
# Path parameters worth a log key, by the name each gets.
PATH_KEYS = {
    "tenant": "tenant",
    "database": "database",
    "collection_id": "collection",
    "name": "collection",
}


class RequestTelemetry:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        trace_id = uuid.uuid4().hex
        keys = _lambda_keys(scope)
        keys["trace_id"] = trace_id
        status = 500  # unless a response starts: an exception escaped to the error handler
        current = context.begin(keys)
        if keys.get("cold_start"):
            metrics.emit_cold_start(keys["function_name"])

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(name.lower() == TRACE_HEADER for name, _ in headers):
                    headers.append((TRACE_HEADER, trace_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_traced)
        finally:
            if ROUTE not in current.keys:  # answered before a route ran (404, 405, 413...)
                context.bind(self._route(scope))
            latency = (time.perf_counter() - start) * 1000
            log.info(
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status,
                latency,
                extra={"status": status, "latency_ms": round(latency, 3)},
            )
            metrics.count(metrics.REQUESTS, 1)
            metrics.count(metrics.LATENCY, latency)
            metrics.emit(current, route=current.keys[ROUTE], status_class=f"{status // 100}xx")

    def _route(self, scope: Scope) -> dict[str, Any]:
        """The keys of the route matching ``scope`` (routing may not have got to it)."""
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL and isinstance(route, Route):
                return route_keys(scope["method"], route, child.get("path_params", {}))
        return {ROUTE: UNMATCHED}


def route_selected(request: Request, route: Route) -> None:
    """The request's log keys and metric dimension from the route about to handle it (each
    route's handler calls this first: routing has matched it already, no second scan)."""
    context.bind(route_keys(request.method, route, request.path_params))


def route_keys(method: str, route: Route, path_params: Mapping[str, Any]) -> dict[str, Any]:
    """``route`` as ``METHOD template`` and log keys from its path parameters."""
    keys = {PATH_KEYS[k]: v for k, v in path_params.items() if k in PATH_KEYS}
    return {ROUTE: f"{method} {route.path_format}", **keys}


def _lambda_keys(scope: Scope) -> dict[str, Any]:
    """On Lambda (through Mangum): the invocation's keys and API Gateway's request id."""
    keys = setup.lambda_keys(scope.get("aws.context"))
    request_id = scope.get("aws.event", {}).get("requestContext", {}).get("requestId")
    if request_id:
        keys["correlation_id"] = request_id
    return keys
