"""Chroma's error hierarchy: each error knows its wire name and HTTP status.

The Python client maps errors by the ``error`` string, the JS client by the status code, so both
must be right. Names are keys of ``chromadb.errors.error_types`` (see tests/unit/test_errors.py).
"""

from __future__ import annotations


class ChromaError(Exception):
    """Base class; also the catch-all wire name Chroma uses for 409/422/501 cases."""

    name = "ChromaError"
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(ChromaError):
    name = "InvalidArgumentError"
    status_code = 400


class DuplicateIDError(ChromaError):
    name = "DuplicateID"
    status_code = 400


class NotFoundError(ChromaError):
    name = "NotFoundError"
    status_code = 404


class UniqueConstraintError(ChromaError):
    """A create that collides with an existing name. Chroma sends ``ChromaError`` with 409."""

    name = "ChromaError"
    status_code = 409


class InvalidRequestBodyError(ChromaError):
    """JSON that parses but has the wrong shape (Chroma: 422 ChromaError)."""

    name = "ChromaError"
    status_code = 422


class ForbiddenError(ChromaError):
    """An operation the server configuration disables (e.g. reset)."""

    name = "ChromaError"
    status_code = 403


class UnimplementedError(ChromaError):
    name = "ChromaError"
    status_code = 501


class DeprecatedApiError(ChromaError):
    name = "Unimplemented"
    status_code = 410


class RouteNotFoundError(ChromaError):
    name = "NotFoundError"
    status_code = 404


class MethodNotAllowedError(ChromaError):
    name = "ChromaError"
    status_code = 405


class AuthorizationError(ChromaError):
    """No token, or one the server does not know (the client raises AuthorizationError)."""

    name = "AuthorizationError"
    status_code = 401


class AuthError(ChromaError):
    """A known token acting outside its tenant, databases or role (client: ChromaAuthError)."""

    name = "AuthError"
    status_code = 403


class BatchSizeExceededError(ChromaError):
    name = "BatchSizeExceededError"
    status_code = 413


class InternalError(ChromaError):
    name = "InternalError"
    status_code = 500


class BusyError(ChromaError):
    """Retryable: the collection is busy (its table is being written by another instance).
    Answered as Chroma's rate-limit error, with ``Retry-After``."""

    name = "RateLimitError"
    status_code = 429
    retry_after_seconds = 1


class LogTrimmedError(Exception):
    """Not a wire error: entries a reader asked of a write log were trimmed meanwhile (a folder
    moved the mark past them), so the state it read is stale. Readers read the state again."""
