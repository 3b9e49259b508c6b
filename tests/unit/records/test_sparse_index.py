"""The sparse inverted index: built by maintenance past the threshold next to the table (local
dir and S3), exact against brute force, and still exact after adds, updates, upserts and deletes
written since it was built (BM25's statistics included). Small thresholds keep it quick."""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from chroma_serverless.domain.schema import indexes as collection_schema
from chroma_serverless.records.sparse import indexes
from chroma_serverless.records.sparse.files import IndexFiles
from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.types import (
    Collection,
    DeleteRequest,
    Filter,
    GetRequest,
    IndexPolicy,
    RecordBatch,
    SparseVector,
)
from tests import factories
from tests.support.moto import records_place
from tests.support.search_oracle import SearchOracle, Stored

if TYPE_CHECKING:
    from pathlib import Path


ROWS, DIM, VOCABULARY = 400, 4, 60
# memory_rows=0: every read goes to the engine (and the index), none to an in-memory snapshot.
POLICY = IndexPolicy(threshold=300, memory_rows=0, sub_vector_dims=2, num_bits=8)


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    return records_place(request.param, request, tmp_path)


@pytest.fixture
def store(place: tuple[str, dict[str, str]]) -> LanceRecordStore:
    return LanceRecordStore(place[0], place[1], POLICY)


def sparse_collection(bm25: bool) -> Collection:
    schema = copy.deepcopy(collection_schema.default_schema())
    index = {"enabled": True, "config": {"bm25": bm25}}
    schema["keys"]["sparse"] = {"sparse_vector": {"sparse_vector_index": index}}
    return factories.collection(configuration={}, dimension=DIM, schema=schema)


def vector(rng: np.random.Generator) -> SparseVector:
    # a skewed vocabulary: low terms are common, high ones rare
    size = int(rng.integers(1, 8))
    terms = sorted({int(t) for t in rng.zipf(1.3, size) % VOCABULARY})
    return SparseVector(tuple(terms), tuple(float(v) for v in rng.uniform(0.1, 2.0, len(terms))))


def batch(ids: list[str], rng: np.random.Generator, sparse_every: int = 5) -> RecordBatch:
    metadatas: list[dict[str, Any] | None] = [
        {"group": i % 4, **({"sparse": vector(rng)} if i % sparse_every else {})}
        for i in range(len(ids))
    ]
    return RecordBatch(
        ids=ids,
        embeddings=rng.normal(size=(len(ids), DIM)).astype(np.float32),
        metadatas=metadatas,
    )


def filled(store: LanceRecordStore, bm25: bool) -> Collection:
    c, rng = sparse_collection(bm25), np.random.default_rng(0)
    for start in range(0, ROWS, 100):
        store.add(c, batch([f"r{i}" for i in range(start, start + 100)], rng))
    return c


def oracle(store: LanceRecordStore, c: Collection, bm25: bool) -> SearchOracle:
    got = store.get(c, GetRequest(include=("embeddings", "metadatas")))
    assert got.embeddings is not None and got.metadatas is not None
    records = [
        Stored(i, [float(x) for x in e], None, m)
        for i, e, m in zip(got.ids, got.embeddings, got.metadatas, strict=True)
    ]
    return SearchOracle(records, bm25_keys=frozenset({"sparse"} if bm25 else ()))


def assert_exact(store: LanceRecordStore, c: Collection, bm25: bool, queries: int = 8) -> None:
    brute = oracle(store, c, bm25)
    rng = np.random.default_rng(42)
    for i in range(queries):
        query = vector(rng)
        where = {"group": {"$ne": 1}} if i % 2 else None
        wire = {"#type": "sparse_vector", "indices": list(query.indices)}
        wire["values"] = list(query.values)
        payload = {"rank": {"$knn": {"query": wire, "key": "sparse", "limit": 15}}, "filter": where}
        expected = brute.search(payload)
        found = store.sparse_knn(c, "sparse", query, 15, Filter(where=where), bm25)
        assert [i for i, _ in found] == [i for i, _ in expected]
        assert [d for _, d in found] == pytest.approx([d for _, d in expected], rel=1e-5)


@pytest.mark.parametrize("bm25", [False, True], ids=["sparse", "bm25"])
def test_maintenance_builds_an_exact_index_next_to_the_table(
    store: LanceRecordStore, place: tuple[str, dict[str, str]], bm25: bool
) -> None:
    c = filled(store, bm25)
    assert_exact(store, c, bm25)  # scanned: no index yet
    assert store.index_status(c) == (0, ROWS)

    report = store.maintain(c)

    assert report["sparse_indexes"] == ["sparse"]
    files = IndexFiles(*place)
    assert len(files.versions(c.id, "sparse")) == 1
    assert store.index_status(c) == (ROWS, 0)
    assert_exact(store, c, bm25)
    assert "sparse_indexes" not in store.maintain(c)  # built once per table version
    store.drop(c.id)
    assert files.versions(c.id, "sparse") == []  # stored with the table, dropped with it


@pytest.mark.parametrize("bm25", [False, True], ids=["sparse", "bm25"])
def test_writes_after_the_index_are_found(store: LanceRecordStore, bm25: bool) -> None:
    c = filled(store, bm25)
    store.maintain(c)
    rng = np.random.default_rng(7)

    store.add(c, batch([f"new{i}" for i in range(30)], rng))  # new rows, new terms' counts
    store.update(c, batch([f"r{i}" for i in range(0, 60, 3)], rng, sparse_every=4))
    store.update(c, RecordBatch(ids=["r1", "r2"], metadatas=[{"sparse": None}, {"group": 9}]))
    store.upsert(c, batch(["r5", "r6", "fresh"], rng))
    assert store.delete(c, DeleteRequest(Filter(ids=[f"r{i}" for i in range(100, 140)]))) == 40

    assert store.index_status(c)[1] > 0
    assert_exact(store, c, bm25)
    store.maintain(c)
    assert store.index_status(c)[1] == 0
    assert_exact(store, c, bm25)


def test_deletes_alone_are_found(store: LanceRecordStore) -> None:
    c = filled(store, bm25=True)
    store.maintain(c)
    store.delete(c, DeleteRequest(Filter(where={"group": 2})))
    assert_exact(store, c, bm25=True)


@pytest.mark.parametrize("bm25", [False, True], ids=["sparse", "bm25"])
def test_a_fork_inherits_the_index_and_stays_exact(
    store: LanceRecordStore, place: tuple[str, dict[str, str]], bm25: bool
) -> None:
    c = filled(store, bm25)
    first = store.restore_points(c)[0].version  # before any index
    store.maintain(c)
    rng = np.random.default_rng(11)
    store.add(c, batch([f"new{i}" for i in range(20)], rng))  # written after the index

    fork = dataclasses.replace(c, id=f"fork-{c.id}")
    store.fork(c, fork.id)

    files = IndexFiles(*place)
    assert files.versions(fork.id, "sparse") == files.versions(c.id, "sparse")
    assert store.index_status(fork) == store.index_status(c) == (ROWS, 20)
    assert_exact(store, fork, bm25)
    store.update(fork, batch([f"r{i}" for i in range(0, 90, 3)], rng, sparse_every=3))
    store.delete(fork, DeleteRequest(Filter(ids=[f"r{i}" for i in range(200, 230)])))
    assert_exact(store, fork, bm25)
    assert_exact(store, c, bm25)  # the source has none of the fork's writes
    assert store.count(c) == ROWS + 20

    # a fork of a version older than every index starts without one, and is searched exactly
    old = dataclasses.replace(c, id=f"old-{c.id}")
    store.fork(c, old.id, first)
    assert files.versions(old.id, "sparse") == []
    assert_exact(store, old, bm25)


def test_an_index_written_after_its_version_was_read_is_found(
    store: LanceRecordStore, place: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Maintenance writes a version's index after committing the version: a reader that looked
    in between (and found none) looks again, rather than scanning until the next write."""
    c = filled(store, bm25=True)
    store.maintain(c)
    monkeypatch.setattr(indexes, "RECHECK_S", 0.0)
    reader = LanceRecordStore(place[0], place[1], POLICY)
    listed = reader._sparse.files.versions
    monkeypatch.setattr(reader._sparse.files, "versions", lambda *_: [])  # not written yet
    assert reader.index_status(c) == (0, ROWS)

    monkeypatch.setattr(reader._sparse.files, "versions", listed)  # ... and now it is
    assert reader.index_status(c) == (ROWS, 0)
