"""The index lifecycle: built past the threshold, new rows still found, filtered queries exact,
compaction loses nothing. Small thresholds keep it quick; nothing here is timed."""

from __future__ import annotations

import dataclasses
import uuid
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pytest

from chroma_serverless.records import indexing
from chroma_serverless.records.plan import probes
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
from tests.support.moto import s3_storage_options

if TYPE_CHECKING:
    from pathlib import Path

    import numpy.typing as npt

    from chroma_serverless.types import UpdateMetadata
    from tests.support.moto import Moto

ROWS, DIM = 3000, 16
POLICY = IndexPolicy(
    threshold=2000,
    sub_vector_dims=4,
    num_bits=8,
    nprobes=8,
    refine_factor=10,
    exact_filter_rows=100,
    retention_seconds=60,
    fragment_target=2,
)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LanceRecordStore:
    if request.param == "local":
        return LanceRecordStore(str(tmp_path), policy=POLICY)
    moto: Moto = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    return LanceRecordStore(f"s3://{bucket}/{uuid.uuid4().hex}", s3_storage_options(moto), POLICY)


def clustered(rows: int, seed: int = 0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(30, DIM))
    data = centers[rng.integers(0, 30, rows)] + 0.3 * rng.normal(size=(rows, DIM))
    unit: npt.NDArray[np.float32] = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(
        np.float32
    )
    return unit


def filled(store: LanceRecordStore, batches: int = 6) -> tuple[Collection, np.ndarray]:
    c, data = factories.collection(space="cosine", dimension=DIM), clustered(ROWS)
    size = ROWS // batches
    for start in range(0, ROWS, size):
        ids = [f"r{i}" for i in range(start, start + size)]
        metadatas: list[UpdateMetadata | None] = [
            {"bucket": i % 50, "even": i % 2 == 0} for i in range(start, start + size)
        ]
        store.add(
            c, RecordBatch(ids=ids, embeddings=data[start : start + size], metadatas=metadatas)
        )
    return c, data


def exact(data: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[str]:
    candidates = np.arange(len(data)) if rows is None else rows
    distances = 1 - data[candidates] @ query
    return [f"r{candidates[i]}" for i in np.argsort(distances, kind="stable")[:k]]


def test_index_is_built_past_the_threshold(store: LanceRecordStore) -> None:
    small = factories.collection(space="cosine", dimension=DIM)
    store.add(small, RecordBatch(ids=["a"], embeddings=clustered(1)))
    assert "vector_index" not in store.maintain(small)

    c, _ = filled(store)
    report = store.maintain(c)
    assert report["vector_index"] == "built"
    assert {"id", "seq", "mi_bucket", "mb_even"} <= set(report["scalar_indexes"])
    assert "vector_index" not in store.maintain(c)  # built once


def test_indexed_search_has_high_recall(store: LanceRecordStore) -> None:
    c, data = filled(store)
    store.maintain(c)
    queries = clustered(20, seed=1)
    result = store.query(c, QueryRequest(queries, 10, include=()))
    recall = np.mean(
        [
            len(set(got) & set(exact(data, q, 10))) / 10
            for q, got in zip(queries, result.ids, strict=True)
        ]
    )
    assert recall >= 0.9


def test_rows_added_after_the_index_are_found(store: LanceRecordStore) -> None:
    c, _ = filled(store)
    store.maintain(c)
    fresh = clustered(5, seed=9)
    store.add(c, RecordBatch(ids=[f"new{i}" for i in range(5)], embeddings=fresh))
    result = store.query(c, QueryRequest(fresh, 1, include=("distances",)))
    assert result.ids == [[f"new{i}"] for i in range(5)]


def test_filtered_queries_return_exactly_the_nearest_matching_rows(
    store: LanceRecordStore,
) -> None:
    c, data = filled(store)
    store.maintain(c)
    buckets = np.arange(ROWS) % 50
    queries = clustered(5, seed=2)
    for where, rows in (
        ({"bucket": 7}, np.flatnonzero(buckets == 7)),  # 60 rows: exact path
        ({"bucket": {"$in": [1, 2, 3]}}, np.flatnonzero(np.isin(buckets, [1, 2, 3]))),
        ({"bucket": {"$lt": 25}}, np.flatnonzero(buckets < 25)),  # half the rows: ANN path
    ):
        result = store.query(c, QueryRequest(queries, 10, Filter(where=where), include=()))
        for query, got in zip(queries, result.ids, strict=True):
            assert len(got) == 10
            assert {int(i[1:]) for i in got} <= set(rows.tolist())
            if len(rows) <= POLICY.exact_filter_rows:
                assert got == exact(data, query, 10, rows)


def test_a_filter_matching_fewer_rows_than_asked_returns_all_of_them(
    store: LanceRecordStore,
) -> None:
    c, _ = filled(store)
    store.maintain(c)
    where = {"$and": [{"bucket": 3}, {"even": False}]}  # bucket 3 rows are all odd: 60 rows
    result = store.query(c, QueryRequest(clustered(1, 3), 100, Filter(where=where), include=()))
    assert len(result.ids[0]) == 60


def test_compaction_keeps_every_row_and_id(store: LanceRecordStore) -> None:
    c, _ = filled(store, batches=12)
    store.upsert(
        c,
        RecordBatch(
            ids=["r1", "r2"], embeddings=clustered(2, 5), metadatas=[{"bucket": 99}, {"bucket": 98}]
        ),
    )
    store.delete(c, DeleteRequest(Filter(ids=["r3"])))
    before = store.get(c, GetRequest(include=("metadatas",)))

    report = store.maintain(c)

    assert report["optimized"] and report["fragments"] <= POLICY.fragment_target
    after = store.get(c, GetRequest(include=("metadatas",)))
    assert after.ids == before.ids  # same rows, same insertion order
    assert after.metadatas == before.metadatas
    assert len(after.ids) == ROWS - 1 and "r3" not in after.ids


def test_ef_search_scales_the_partitions_probed() -> None:
    wide = factories.collection(id="x", configuration={"hnsw": {"space": "l2", "ef_search": 400}})
    default = factories.collection(space="cosine", dimension=DIM)
    percent = POLICY.probe_percent
    assert probes(POLICY.nprobes, 0, percent, default.ef_search) == POLICY.nprobes
    assert probes(POLICY.nprobes, 0, percent, wide.ef_search) == 4 * POLICY.nprobes
    # a wide index: its share of partitions decides, scaled alike
    assert probes(POLICY.nprobes, 400, percent, default.ef_search) == 400 * percent // 100


def test_indexing_status_counts_rows_waiting_for_the_index(store: LanceRecordStore) -> None:
    c, _ = filled(store)
    assert store.index_status(c) == (0, ROWS)  # past the threshold, no index yet
    store.maintain(c)
    assert store.index_status(c) == (ROWS, 0)
    store.add(c, RecordBatch(ids=["late"], embeddings=clustered(1, 7)))
    assert store.index_status(c) == (ROWS, 1)


def vector_indexes(store: LanceRecordStore, c: Collection) -> list[str]:
    table = store._tables.open(c.id)
    assert table is not None
    return [i.name for i in table.list_indices() if i.columns == ["embedding"]]


def recall_at_10(store: LanceRecordStore, c: Collection, data: np.ndarray) -> float:
    queries = clustered(20, seed=1)
    result = store.query(c, QueryRequest(queries, 10, include=()))
    return float(
        np.mean(
            [
                len(set(got) & set(exact(data, q, 10))) / 10
                for q, got in zip(queries, result.ids, strict=True)
            ]
        )
    )


def test_the_vector_index_is_trained_again_once_the_collection_has_grown_fourfold(
    store: LanceRecordStore,
) -> None:
    """The index is trained on the rows present at the first maintenance past the threshold
    (on AWS, the first minute of a long ingest); it is trained again, on every row, once the
    collection has grown to four times those rows, and not before."""
    growing = dataclasses.replace(POLICY, threshold=500, rows_per_partition=100)
    store.policy = growing
    c, data = factories.collection(space="cosine", dimension=DIM), clustered(ROWS)

    def add(start: int, end: int) -> None:
        ids = [f"r{i}" for i in range(start, end)]
        store.add(c, RecordBatch(ids=ids, embeddings=data[start:end]))

    add(0, 600)
    assert store.maintain(c)["vector_index"] == "built"
    assert vector_indexes(store, c) == ["embedding_ivf_600"]
    add(600, 2000)  # 3.3 times the rows trained on: the index takes the new rows as they are
    assert "vector_index" not in store.maintain(c)
    assert vector_indexes(store, c) == ["embedding_ivf_600"]

    add(2000, ROWS)  # 5 times
    report = store.maintain(c)

    assert report["vector_index"] == "retrained"
    assert vector_indexes(store, c) == [f"embedding_ivf_{ROWS}"]  # the old one dropped
    assert store.index_status(c) == (ROWS, 0)
    assert recall_at_10(store, c, data) >= 0.9
    assert "vector_index" not in store.maintain(c)  # not grown since: nothing rebuilt
    assert vector_indexes(store, c) == [f"embedding_ivf_{ROWS}"]


def test_an_index_built_before_names_recorded_its_rows_counts_as_trained_at_the_threshold() -> None:
    legacy, named = SimpleNamespace(name="embedding_idx"), SimpleNamespace(name="embedding_ivf_7")
    assert indexing.trained_rows(legacy, POLICY) == POLICY.threshold
    assert indexing.trained_rows(named, POLICY) == 7
