"""Maintenance beside a running server, as the maintenance function runs beside the data
function on AWS, and what it logs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from chroma_serverless.cli import AWS_LOCAL_BUCKET, AWS_LOCAL_TABLE
from chroma_serverless.settings import Settings
from chroma_serverless.types import IndexPolicy

if TYPE_CHECKING:
    import pytest

    from chroma_serverless.service.service import Service
    from tests.support.server import Server

# Every step of maintenance on a small collection: IVF-PQ, scalar indexes and compaction.
EAGER = IndexPolicy(
    threshold=50, sub_vector_dims=4, rows_per_partition=32, fragment_target=1, retention_seconds=60
)


def maintenance_beside(
    server: Server, monkeypatch: pytest.MonkeyPatch, index: IndexPolicy = EAGER
) -> Service:
    """A maintainer in this process on the server's storage, as the maintenance function is
    beside the data function on AWS."""
    from chroma_serverless.wiring import build_service

    if server.moto_endpoint is None:
        return build_service(Settings(path=server.data, index=index))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(
        mode="aws",
        catalog_table=AWS_LOCAL_TABLE,
        records_uri=f"s3://{AWS_LOCAL_BUCKET}/records",
        aws_endpoint=server.moto_endpoint,
        index=index,
    )
    return build_service(settings)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The errors ``caplog`` holds (and any record with an exception), as ``logger: message``."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info
    ]
