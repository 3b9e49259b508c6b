"""Errors mapped to responses in one place: every :class:`ChromaError` as Chroma's
``{"error": name, "message": ...}`` with its status; FastAPI's and Starlette's own errors
(validation, no route, wrong method) in Chroma's shapes; anything else a logged 500."""

from __future__ import annotations

import logging
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
        response = error_response(InternalError("Internal server error"))
        log.error(
            "internal error on %s %s (trace id %s)",
            request.method,
            request.url.path,
            response.headers["chroma-trace-id"],
            exc_info=exc,
        )
        return response
