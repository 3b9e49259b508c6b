"""Property tests: the real LanceDB record store filters exactly as the pure-Python oracle says.

Every example writes a generated batch (adversarial keys, ids, values and documents, mixed
types under one key) to a fresh collection of a real :class:`LanceRecordStore` and checks
get / delete / query with generated ``ids`` + ``where`` + ``where_document`` against
:func:`tests.support.oracle.matches`.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chroma_serverless.domain import filters
from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.types import (
    Collection,
    DeleteRequest,
    Filter,
    GetRequest,
    IndexPolicy,
    QueryRequest,
    RecordBatch,
)
from tests import factories
from tests.support import oracle
from tests.support.oracle import Record
from tests.support.strategies import Dataset, FilterCase, datasets, filter_cases

if TYPE_CHECKING:
    from collections.abc import Sequence

    from chroma_serverless.types import UpdateMetadata

# Moderate by default so the module stays well under a minute; raise it to hunt for bugs.
EXAMPLES = int(os.environ.get("FILTER_PROPERTY_EXAMPLES", "75"))
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    report_multiple_bugs=False,
)


@pytest.fixture(scope="module", params=["engine", "memory"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> LanceRecordStore:
    """One store per read path for the module; every example writes its own collection (a new
    table). Small tables are read from memory snapshots unless ``memory_rows`` is 0, when every
    filter goes to the engine as SQL: both paths must agree with the oracle."""
    policy = IndexPolicy(memory_rows=0, memory_mb=0) if request.param == "engine" else IndexPolicy()
    return LanceRecordStore(str(tmp_path_factory.mktemp("filter-properties")), policy=policy)


def write(store: LanceRecordStore, dataset: Dataset) -> Collection:
    collection = factories.collection(name="props", configuration={}, dimension=dataset.dimension)
    if dataset.records:
        store.add(
            collection,
            RecordBatch(
                ids=dataset.ids,
                embeddings=np.array(dataset.embeddings, dtype=np.float32),
                metadatas=[r.metadata for r in dataset.records],
                documents=[r.document for r in dataset.records],
            ),
        )
    return collection


def to_filter(case: FilterCase) -> Filter:
    return Filter(ids=case.ids, where=case.where, where_document=case.where_document)


def validate(case: FilterCase) -> None:
    """Generated clauses are valid Chroma filters."""
    if case.where is not None:
        filters.validate_where(case.where)
    if case.where_document is not None:
        filters.validate_where_document(case.where_document)


def expected(records: Sequence[Record], case: FilterCase) -> set[str]:
    return oracle.select(records, case.where, case.where_document, case.ids)


def got_ids(store: LanceRecordStore, collection: Collection, case: FilterCase) -> set[str]:
    result = store.get(
        collection, GetRequest(filter=to_filter(case), include=("metadatas", "documents"))
    )
    assert len(result.ids) == len(set(result.ids)), result.ids
    return set(result.ids)


# --------------------------------------------------------------------------- exact types


def same_value(got: object, want: object) -> bool:
    """Equal with exactly the same type, element by element for arrays (2.0 stays a float)."""
    if type(got) is not type(want):
        return False
    if isinstance(want, list):
        assert isinstance(got, list)
        return len(got) == len(want) and all(map(same_value, got, want))
    if isinstance(want, float):
        assert isinstance(got, float)
        return got == want and math.copysign(1, got) == math.copysign(1, want)
    return got == want


def assert_round_trip(
    store: LanceRecordStore, collection: Collection, records: list[Record]
) -> None:
    result = store.get(collection, GetRequest(include=("metadatas", "documents")))
    assert result.metadatas is not None and result.documents is not None
    stored = {
        i: (m, d) for i, m, d in zip(result.ids, result.metadatas, result.documents, strict=True)
    }
    assert set(stored) == {r.id for r in records}
    for record in records:
        metadata, document = stored[record.id]
        assert document == record.document, record.id
        if record.metadata is None:
            assert metadata is None, (record.id, metadata)
            continue
        assert metadata is not None, record.id
        assert set(metadata) == set(record.metadata), (record.id, metadata, record.metadata)
        for key, want in record.metadata.items():
            assert same_value(metadata[key], want), (record.id, key, metadata[key], want)


# --------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(data=st.data())
def test_get_selects_exactly_the_oracle_ids(store: LanceRecordStore, data: st.DataObject) -> None:
    dataset = data.draw(datasets())
    collection = write(store, dataset)
    assert_round_trip(store, collection, dataset.records)
    for case in data.draw(st.lists(filter_cases(dataset), min_size=1, max_size=5)):
        validate(case)
        assert got_ids(store, collection, case) == expected(dataset.records, case), case


@PROPERTY_SETTINGS
@given(data=st.data())
def test_filters_see_merged_metadata_after_upsert(
    store: LanceRecordStore, data: st.DataObject
) -> None:
    """Upsert/update change a key's type or remove it; no stale typed column may still match."""
    dataset = data.draw(datasets(min_records=1))
    collection = write(store, dataset)
    p = dataset.pools
    changed = data.draw(
        st.lists(st.sampled_from(dataset.ids), min_size=1, max_size=len(dataset.ids), unique=True)
    )
    changes = st.one_of(st.none(), p.value(), p.value())
    updates: list[UpdateMetadata | None] = [
        data.draw(st.dictionaries(st.sampled_from(p.keys), changes, min_size=1)) for _ in changed
    ]
    documents = [data.draw(st.one_of(st.none(), st.text(max_size=5))) for _ in changed]
    vectors = np.zeros((len(changed), dataset.dimension), dtype=np.float32)
    batch = RecordBatch(ids=changed, embeddings=vectors, metadatas=updates, documents=documents)
    if data.draw(st.booleans(), label="upsert"):
        store.upsert(collection, batch)
    else:
        store.update(collection, batch)

    by_id = {r.id: r for r in dataset.records}
    for record_id, update, document in zip(changed, updates, documents, strict=True):
        old = by_id[record_id]
        merged = dict(old.metadata or {})
        for key, value in (update or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        by_id[record_id] = Record(
            record_id, merged or None, old.document if document is None else document
        )
    records = list(by_id.values())

    assert_round_trip(store, collection, records)
    for case in data.draw(st.lists(filter_cases(dataset), min_size=1, max_size=5)):
        validate(case)
        assert got_ids(store, collection, case) == expected(records, case), case


def has_predicate(case: FilterCase) -> bool:
    return case.where is not None or case.where_document is not None


@PROPERTY_SETTINGS
@given(data=st.data())
def test_delete_removes_exactly_the_oracle_ids(
    store: LanceRecordStore, data: st.DataObject
) -> None:
    dataset = data.draw(datasets(min_records=1))
    collection = write(store, dataset)
    case = data.draw(filter_cases(dataset, require=has_predicate))
    validate(case)
    doomed = expected(dataset.records, case)

    deleted = store.delete(collection, DeleteRequest(filter=to_filter(case)))

    assert deleted == len(doomed), case
    remaining = store.get(collection, GetRequest(include=()))
    assert set(remaining.ids) == set(dataset.ids) - doomed, case
    assert store.count(collection) == len(dataset.ids) - len(doomed)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_query_returns_nearest_oracle_matches(store: LanceRecordStore, data: st.DataObject) -> None:
    dataset = data.draw(datasets())
    collection = write(store, dataset)
    coordinate = st.integers(-8, 8).map(float)
    vector = data.draw(st.lists(coordinate, min_size=dataset.dimension, max_size=dataset.dimension))
    n_results = data.draw(st.integers(1, 6))
    case = data.draw(filter_cases(dataset))
    validate(case)
    matching = expected(dataset.records, case)
    request = QueryRequest(
        embeddings=np.array([vector], dtype=np.float32),
        n_results=n_results,
        filter=to_filter(case),
        include=("distances", "metadatas"),
    )
    if set(case.ids or ()) - set(dataset.ids):  # naming a missing record is an error
        with pytest.raises(InvalidArgumentError, match="Error finding id"):
            store.query(collection, request)
        return

    result = store.query(collection, request)

    (ids,) = result.ids
    assert len(ids) == len(set(ids))
    assert set(ids) <= matching, case
    assert len(ids) == min(n_results, len(matching)), case
    # Exact search: nothing left out is nearer than what was returned (l2 is squared).
    assert result.distances is not None
    query = np.array(vector, dtype=np.float64)
    distance: dict[str, Any] = {
        r.id: float(np.sum((np.array(e, dtype=np.float64) - query) ** 2))
        for r, e in zip(dataset.records, dataset.embeddings, strict=True)
    }
    for record_id, reported in zip(ids, result.distances[0], strict=True):
        assert reported == pytest.approx(distance[record_id], rel=1e-5, abs=1e-5)
    if ids:
        farthest = max(distance[i] for i in ids)
        assert all(distance[i] >= farthest - 1e-5 for i in matching - set(ids)), case
