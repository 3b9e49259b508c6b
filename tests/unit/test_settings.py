"""Settings come from the environment once; AWS mode sizes batches for Lambda's payload limit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from chroma_serverless.settings import DEFAULT_MAX_BODY_BYTES, LAMBDA_MAX_BODY_BYTES, Settings
from tests.support.app import app_of

if TYPE_CHECKING:
    from chroma_serverless.service.service import Service


def test_embedded_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.mode == "embedded"
    assert settings.path == Path("data")
    assert settings.records_root == "data/records"
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert settings.batch_size == 5461
    assert settings.storage_options() == {}


def test_aws_mode_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CHROMA_SERVERLESS_MODE": "aws",
            "CHROMA_SERVERLESS_CATALOG_TABLE": "catalog",
            "CHROMA_SERVERLESS_RECORDS_URI": "s3://bucket/records",
            "CHROMA_SERVERLESS_AWS_ENDPOINT": "http://127.0.0.1:5000",
            "AWS_REGION": "eu-west-1",
            "CHROMA_SERVERLESS_ALLOW_RESET": "true",
        }
    )
    assert (settings.catalog_table, settings.records_root) == ("catalog", "s3://bucket/records")
    assert settings.allow_reset
    assert settings.max_body_bytes == LAMBDA_MAX_BODY_BYTES
    assert settings.storage_options() == {
        "aws_region": "eu-west-1",
        "aws_endpoint": "http://127.0.0.1:5000",
        "allow_http": "true",
    }


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="MODE"):
        Settings.from_env({"CHROMA_SERVERLESS_MODE": "cloud"})


@pytest.mark.parametrize(("dimension", "expected"), [(384, 1342), (1536, 537), (3072, 298)])
def test_batch_size_keeps_a_base64_batch_under_the_body_limit(
    dimension: int, expected: int
) -> None:
    settings = Settings(
        mode="aws", max_body_bytes=LAMBDA_MAX_BODY_BYTES, embedding_dimension=dimension
    )
    assert settings.batch_size == expected
    base64_vector = 4 * -(-dimension * 4 // 3)
    assert settings.batch_size * base64_vector < LAMBDA_MAX_BODY_BYTES


def test_bodies_over_the_limit_are_413_chroma_errors(service: Service, tmp_path: Path) -> None:
    settings = Settings(mode="aws", path=tmp_path, max_body_bytes=10_000, embedding_dimension=8)
    app = app_of(service, settings)
    db = "/api/v2/tenants/default_tenant/databases/default_database"
    with TestClient(app) as api:
        assert api.get("/api/v2/pre-flight-checks").json()["max_batch_size"] == 4
        collection = api.post(f"{db}/collections", json={"name": "big"}).json()
        add = f"{db}/collections/{collection['id']}/add"
        small = api.post(add, json={"ids": ["a"], "embeddings": [[1.0] * 8]})
        assert small.status_code == 201
        large = api.post(
            add, json={"ids": ["b"], "embeddings": [[1.0] * 8], "documents": ["x" * 20_000]}
        )
        assert large.status_code == 413
        assert large.json()["error"] == "BatchSizeExceededError"
        assert "chroma-trace-id" in large.headers
        assert api.get(f"{db}/collections/{collection['id']}/count").json() == 1


def test_snapshot_memory_is_sized_from_the_lambda_function_memory() -> None:
    machine_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    assert Settings.from_env({}).index.memory_mb == max(256, min(machine_mb // 4, 8192))
    on_lambda = Settings.from_env({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"})
    assert on_lambda.index.memory_mb == 752
    chosen = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008", "CHROMA_SERVERLESS_INDEX_MEMORY_MB": "50"}
    assert Settings.from_env(chosen).index.memory_mb == 50
