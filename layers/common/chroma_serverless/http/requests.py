"""The request every route sees: its JSON body parsed by the wire's fast parser."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from chroma_serverless.wire import body as wire_body


class JsonRequest(Request):
    async def json(self) -> Any:
        body = await self.body()
        try:
            return wire_body.parse(body)
        except ValueError as exc:
            # Refused as Chroma's server refuses it (serde_json): invalid JSON, and also what
            # the standard library would accept but no store can hold, such as a lone UTF-16
            # surrogate ("\ud800"). FastAPI answers a decode error as invalid JSON.
            raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from exc
