"""What an operator reads, parsed: a process's JSON log lines and CloudWatch EMF documents, and
the values (credentials, record contents) that must never appear in them."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chroma_serverless.observe import metrics

if TYPE_CHECKING:
    from collections.abc import Sequence

RECORD_ROUTE = "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/"
QUERY_ROUTE = RECORD_ROUTE + "query"
SERVICE_NAME = "chroma-serverless"

# What must never reach a log line or a metric: credentials and the content of records.
TOKEN = "csk-obs-" + uuid.uuid4().hex
PASSWORD = "pw-" + uuid.uuid4().hex
WRONG_PASSWORD = "wrong-" + uuid.uuid4().hex
DOCUMENT = "document-" + uuid.uuid4().hex
METADATA_VALUE = "metadata-" + uuid.uuid4().hex
# Exact in float32, so the same text whichever precision a leak would print.
EMBEDDING: Sequence[float] = [0.2109375, 0.8671875]
SECRETS = (
    TOKEN,
    PASSWORD,
    WRONG_PASSWORD,
    base64.b64encode(f"olga:{PASSWORD}".encode()).decode(),
    DOCUMENT,
    METADATA_VALUE,
    "0.2109375",
    "0.8671875",
)


@dataclass
class Output:
    """What a process wrote: JSON log lines and EMF documents (stdout), and all the text."""

    logs: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    text: str

    @classmethod
    def parse(cls, stdout: str, stderr: str = "") -> Output:
        """Every line on stdout must be JSON."""
        lines = [json.loads(line) for line in stdout.splitlines()]
        return cls(
            [line for line in lines if "_aws" not in line],
            [line for line in lines if "_aws" in line],
            stdout + stderr,
        )

    def of(self, trace_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The log lines and EMF documents of the request with ``trace_id``."""
        return (
            [line for line in self.logs if line.get("trace_id") == trace_id],
            [doc for doc in self.documents if doc.get("trace_id") == trace_id],
        )

    def with_metric(self, name: str) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if name in metric_names(doc)]


def metric_names(document: dict[str, Any]) -> set[str]:
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == metrics.NAMESPACE
    return {metric["Name"] for metric in directive["Metrics"]}


def dimensions(document: dict[str, Any]) -> list[dict[str, str]]:
    """Each dimension set of ``document`` with its values."""
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    return [{name: document[name] for name in names} for names in directive["Dimensions"]]


def request_dimensions(route: str, status_class: str) -> list[dict[str, str]]:
    return [{"route": route, "status_class": status_class, "service": SERVICE_NAME}]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
