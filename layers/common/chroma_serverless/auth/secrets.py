"""Read the bootstrap admin token from AWS Secrets Manager (the AWS stack's first token)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chroma_serverless.settings import Settings


def read_secret(settings: Settings, secret_id: str) -> str:
    import boto3

    client = boto3.client(
        "secretsmanager", endpoint_url=settings.aws_endpoint, region_name=settings.aws_region
    )
    value: str = client.get_secret_value(SecretId=secret_id)["SecretString"]
    return value.strip()
