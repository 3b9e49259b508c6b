"""Errors mapped to responses in one place: every :class:`ChromaError` as Chroma's
``{"error": name, "message": ...}`` with its status; FastAPI's and Starlette's own errors
(validation, no route, wrong method) in Chroma's shapes; anything else a 500 from
:class:`InternalErrors`, logged once with its traceback and without the exception's message
(engines quote the values they were given: user data)."""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chroma_serverless.errors import (
    BusyError,
    ChromaError,
    InternalError,
    InvalidArgumentError,
    InvalidRequestBodyError,
    MethodNotAllowedError,
    RouteNotFoundError,
)
from chroma_serverless.http.responses import JSON
from chroma_serverless.observe.context import trace_id

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("chroma_serverless")


def error_response(error: ChromaError) -> JSON:
    headers = {"chroma-trace-id": trace_id()}
    if isinstance(error, BusyError):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return JSON(
        {"error": error.name, "message": error.message},
        status_code=error.status_code,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChromaError)
    async def chroma_error(_: Request, exc: ChromaError) -> JSON:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSON:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = "; ".join(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors)
            return error_response(
                InvalidArgumentError(f"Failed to parse the request body as JSON: {detail}")
            )
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors
        )
        return error_response(
            InvalidRequestBodyError(
                f"Failed to deserialize the JSON body into the target type: {detail}"
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        if exc.status_code == 404:
            error: ChromaError = RouteNotFoundError(
                f"No route for {request.method} {request.url.path}"
            )
        elif exc.status_code == 405:
            error = MethodNotAllowedError(
                f"Method {request.method} is not allowed on {request.url.path}"
            )
        else:
            error = ChromaError(str(exc.detail))
            error.status_code = exc.status_code
        return error_response(error)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSON:
        """The last resort, for an exception from a middleware outside :class:`InternalErrors`
        (Starlette then re-raises it to the server, which closes the connection)."""
        response = error_response(InternalError("Internal server error"))
        log_internal_error(request.scope, response, exc)
        return response


class InternalErrors:
    """Answer an exception no handler took as a 500 ``InternalError`` and log it, without
    letting it reach the ASGI server: uvicorn closes a keep-alive connection on an exception
    that escapes after the response started, so the client's next request would fail with a
    reset connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:  # too late to answer: the response is broken, let the server close it
                raise
            response = error_response(InternalError("Internal server error"))
            log_internal_error(scope, response, exc)
            await response(scope, receive, send)


def log_internal_error(scope: Scope, response: JSON, exc: BaseException) -> None:
    """One line: the route (its template, not the path), the trace id, and the traceback with
    each exception's type but not its message."""
    route = getattr(scope.get("route"), "path", None) or "unmatched route"
    log.error(
        "internal error on %s %s (trace id %s): %s\n%s",
        scope.get("method"),
        route,
        response.headers["chroma-trace-id"],
        type(exc).__name__,
        redacted_traceback(exc),
        extra={"exception_name": type(exc).__name__},
    )


def redacted_traceback(exc: BaseException) -> str:
    """``exc``'s traceback as Python prints it, causes first, with every message withheld."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        frames = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__)))
        parts.append(
            f"Traceback (most recent call last):\n{frames}"
            f"{kind.__module__}.{kind.__qualname__}: (message withheld: it may quote user data)"
        )
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return "\n\nDuring handling of the above, this was raised:\n\n".join(reversed(parts))
