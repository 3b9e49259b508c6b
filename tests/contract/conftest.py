"""The seams' implementations the contract suites run over: every catalog (SQLite, DynamoDB on
moto) and the credentials beside it. The record stores (``record_store``) are the root
conftest's: the filter tests use them too."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from chroma_serverless.catalog.sqlite.catalog import SqliteCatalog
from tests.support.app import credentials_beside
from tests.support.moto import new_catalog_table

if TYPE_CHECKING:
    from pathlib import Path

    from chroma_serverless.ports import Catalog, Credentials, Log
    from tests.support.moto import Moto


@pytest.fixture(params=["sqlite", "dynamodb"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    """Every catalog implementation; the contract suite runs once per param."""
    if request.param == "sqlite":
        return SqliteCatalog(tmp_path / "catalog.sqlite3")
    from chroma_serverless.catalog.dynamodb.catalog import DynamoDbCatalog

    moto: Moto = request.getfixturevalue("moto")
    return DynamoDbCatalog(moto.client("dynamodb"), new_catalog_table(moto))


@pytest.fixture
def credentials(catalog: Catalog) -> Credentials:
    """The credentials kept beside ``catalog`` (its SQLite file, its DynamoDB table)."""
    return credentials_beside(catalog)


@pytest.fixture(params=["sqlite", "dynamodb"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Log:
    """Every write-log implementation; the log contract suite runs once per param. DynamoDB's
    keeps its items in a catalog table and the entries too large for an item in the bucket."""
    if request.param == "sqlite":
        from chroma_serverless.catalog.sqlite.log import SqliteLog

        return SqliteLog(tmp_path / "log.sqlite3")
    from chroma_serverless.catalog.dynamodb.log import DynamoDbLog

    moto: Moto = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    return DynamoDbLog(
        moto.client("dynamodb"),
        new_catalog_table(moto),
        moto.client("s3"),
        bucket,
        f"log-{uuid.uuid4().hex[:12]}",
        abandon_after=0.5,
    )
