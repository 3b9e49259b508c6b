"""The seams' implementations the contract suites run over: every catalog (SQLite, DynamoDB on
moto) and the credentials beside it. The record stores (``record_store``) are the root
conftest's: the filter tests use them too."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from chroma_serverless.catalog.sqlite.catalog import SqliteCatalog
from tests.support.app import credentials_beside
from tests.support.moto import new_catalog_table

if TYPE_CHECKING:
    from pathlib import Path

    from chroma_serverless.ports import Catalog, Credentials
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
