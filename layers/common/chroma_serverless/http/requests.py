"""The request every route sees: its JSON body parsed by the wire's fast parser."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from chroma_serverless.wire import body as wire_body


class JsonRequest(Request):
    async def json(self) -> Any:
        body = await self.body()
        try:
            return wire_body.parse(body)
        except ValueError:
            # What the fast parser refuses gets the standard library's verdict and error
            # message, as before.
            return await super().json()
