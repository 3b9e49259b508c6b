"""Searches through the service: one version of the records per search request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.search.parse import parse
from chroma_serverless.types import RecordBatch

if TYPE_CHECKING:
    import pytest

    from chroma_serverless.service.service import Service


def test_a_search_checks_the_collections_version_once(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a collection of four records
    created = service.create_collection(
        "default_tenant", "default_database", "docs", None, None, False
    )
    vectors = np.eye(4, dtype=np.float32)
    ids = ["a", "b", "c", "d"]
    documents: list[str | None] = ["alpha", "beta", "gamma", "delta"]
    service.add(created, RecordBatch(ids=ids, embeddings=vectors, documents=documents))
    collection = service.catalog.get_collection_by_id(created.id)
    store = service.records
    assert isinstance(store, LanceRecordStore)
    checks: list[str] = []
    check, pin = store._tables._read, store._tables.pin

    def counted(collection_id: str, read: Any, version: int | None = None) -> Any:
        checks.append(collection_id)
        return check(collection_id, read, version)

    def pinned(collection_id: str, version: int | None) -> None:
        checks.append(collection_id)
        pin(collection_id, version)

    monkeypatch.setattr(store._tables, "_read", counted)
    monkeypatch.setattr(store._tables, "pin", pinned)
    # WHEN a search ranks by knn and selects documents and scores (a query and two gets)
    search = {
        "rank": {"$knn": {"query": [0.0, 1.0, 0.1, 0.0], "limit": 3}},
        "select": {"keys": ["#document", "#score"]},
    }
    (found,) = service.search(collection, [parse(search, 0)])
    # THEN it answers from one version check
    assert found.ids[0] == "b" and found.documents is not None and found.documents[0] == "beta"
    assert checks == [collection.id]
    # AND the next request checks again
    service.count(collection)
    assert checks == [collection.id, collection.id]
