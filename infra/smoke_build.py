"""Smoke-test what `sam build ControlFunction` produced, on Python 3.12 like the Lambda runtime.

Imports the built function with only the built layer on the path (so a dependency missing from
layers/common/requirements.txt, or an import of lancedb/pyarrow in the control plane, fails
here) and feeds it a captured API Gateway event. Run by `make sam`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".aws-sam" / "build"


def main() -> int:
    sys.path[:0] = [str(BUILD / "ControlFunction"), str(BUILD / "CommonLayer" / "python")]
    os.environ.update(CHROMA_SERVERLESS_MODE="embedded", CHROMA_SERVERLESS_PATH=tempfile.mkdtemp())
    import app  # the built functions/control/app.py

    event = json.loads((ROOT / "tests" / "events" / "rest.json").read_text())
    event.update(httpMethod="GET", path="/api/v2/heartbeat", body=None, isBase64Encoded=False)
    event["multiValueHeaders"] = {}
    event["multiValueQueryStringParameters"] = None
    event["queryStringParameters"] = None
    response = app.handler(event, None)
    assert response["statusCode"] == 200, response
    assert "nanosecond heartbeat" in json.loads(response["body"]), response
    leaked = sorted({"lancedb", "pyarrow"} & set(sys.modules))
    assert not leaked, f"the control plane imported {leaked}"
    print(f"built ControlFunction answers heartbeat on Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
