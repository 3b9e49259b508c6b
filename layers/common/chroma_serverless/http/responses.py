"""The JSON response every route answers with."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from chroma_serverless.wire.responses import json_default


class JSON(Response):
    """orjson with numpy support: embeddings leave as float32 arrays without a Python copy;
    sparse vectors leave in Chroma's tagged form."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS
        return orjson.dumps(content, default=json_default, option=options)
