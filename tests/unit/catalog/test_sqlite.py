"""The embedded catalog serves collections by id from a cache: never stale, whichever
connection or process changed the database."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from chroma_serverless.catalog.sqlite.catalog import SqliteCatalog
from chroma_serverless.errors import NotFoundError
from tests import factories

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.sqlite3"


def test_changes_through_the_same_catalog_are_seen(path: Path) -> None:
    catalog = SqliteCatalog(path)
    collection, _ = catalog.create_collection(factories.collection(name="a"), get_or_create=False)
    assert catalog.get_collection_by_id(collection.id).name == "a"

    catalog.update_collection(collection.id, "b", {"k": 1}, None, None)
    assert catalog.get_collection_by_id(collection.id).name == "b"
    assert catalog.get_collection_by_id(collection.id).metadata == {"k": 1}
    assert catalog.set_dimension(collection.id, 3) == 3
    assert catalog.get_collection_by_id(collection.id).dimension == 3

    catalog.delete_collection(collection.tenant, collection.database, "b")
    with pytest.raises(NotFoundError):
        catalog.get_collection_by_id(collection.id)


def test_changes_through_another_connection_are_seen(path: Path) -> None:
    ours, theirs = SqliteCatalog(path), SqliteCatalog(path)
    collection, _ = ours.create_collection(factories.collection(name="a"), get_or_create=False)
    assert ours.get_collection_by_id(collection.id).name == "a"

    theirs.update_collection(collection.id, "b", None, None, None)
    assert ours.get_collection_by_id(collection.id).name == "b"

    theirs.delete_collection(collection.tenant, collection.database, "b")
    with pytest.raises(NotFoundError):
        ours.get_collection_by_id(collection.id)


def test_changes_by_another_process_are_seen(path: Path) -> None:
    catalog = SqliteCatalog(path)
    collection, _ = catalog.create_collection(factories.collection(name="a"), get_or_create=False)
    assert catalog.get_collection_by_id(collection.id).name == "a"

    rename = (
        "import sys; from chroma_serverless.catalog.sqlite.catalog import SqliteCatalog; "
        "SqliteCatalog(sys.argv[1]).update_collection(sys.argv[2], 'b', None, None, None)"
    )
    subprocess.run([sys.executable, "-c", rename, str(path), collection.id], check=True)

    assert catalog.get_collection_by_id(collection.id).name == "b"
