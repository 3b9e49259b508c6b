"""The body limit: a request over it is answered before any route reads it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chroma_serverless.errors import BatchSizeExceededError
from chroma_serverless.http.errors import error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Answer 413 ``BatchSizeExceededError`` for bodies over the limit (AWS Lambda's 6 MB cap
    would otherwise surface as an opaque gateway error)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= self.limit:
            message = await receive()
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        if size > self.limit:
            error = BatchSizeExceededError(
                f"Request body exceeds the server's limit of {self.limit} bytes; send fewer "
                "records per request (see max_batch_size in /pre-flight-checks)"
            )
            await error_response(error)(scope, receive, send)
            return
        pending: list[Message] = [
            {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        ]

        async def replay() -> Message:
            """The body once, then what the client sends next (its disconnect, which a
            streamed response such as a file waits for)."""
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)
