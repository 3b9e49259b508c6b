"""moto's server over real HTTP (DynamoDB, S3, SQS), and where the stores keep their data on it."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from chroma_serverless.cli import serialize_dynamodb

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


class Moto:
    """moto's server over real HTTP on a free port: DynamoDB and S3 for offline AWS tests."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        serialize_dynamodb()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        self._server.stop()


def new_catalog_table(moto: Moto) -> str:
    from chroma_serverless.catalog.dynamodb.keys import ATTRIBUTES, KEY_SCHEMA

    name = f"catalog-{uuid.uuid4().hex[:12]}"
    moto.client("dynamodb").create_table(
        TableName=name,
        KeySchema=KEY_SCHEMA,
        AttributeDefinitions=ATTRIBUTES,
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def records_place(
    where: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, dict[str, str]]:
    """Where a record store keeps its tables, and its storage options: a directory under
    ``tmp_path`` (``local``), or a fresh prefix in the session's moto bucket (``s3``)."""
    if where == "local":
        return str(tmp_path / "records"), {}
    moto: Moto = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    return f"s3://{bucket}/{uuid.uuid4().hex}", s3_storage_options(moto)


def s3_storage_options(moto: Moto) -> dict[str, str]:
    return {
        "aws_endpoint": moto.endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "allow_http": "true",
    }
