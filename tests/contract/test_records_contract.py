"""The record-store contract: Chroma's write/read semantics on every store (``record_store``)."""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.types import (
    Collection,
    DeleteRequest,
    Filter,
    GetRequest,
    QueryRequest,
    RecordBatch,
)
from tests import factories

if TYPE_CHECKING:
    from chroma_serverless.types import Include, Space

ALL: tuple[Include, ...] = ("embeddings", "documents", "uris", "metadatas")


def batch(ids: list[str], dimension: int = 3, seed: int = 0, **columns: Any) -> RecordBatch:
    generated = factories.vectors(len(ids), dimension=dimension, seed=seed)
    return RecordBatch(ids=ids, embeddings=columns.pop("embeddings", generated), **columns)


def everything(store: LanceRecordStore, c: Collection, **request: Any) -> dict[str, Any]:
    result = store.get(c, GetRequest(include=ALL, **request))
    return {
        i: {
            "embedding": None if result.embeddings is None else result.embeddings[n].tolist(),
            "document": result.documents[n] if result.documents else None,
            "uri": result.uris[n] if result.uris else None,
            "metadata": result.metadatas[n] if result.metadatas else None,
        }
        for n, i in enumerate(result.ids)
    }


def test_empty_collection_reads_as_empty(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    assert record_store.count(c) == 0
    assert record_store.get(c, GetRequest()).ids == []
    query = QueryRequest(np.ones((2, 3), np.float32), 5)
    assert record_store.query(c, query).ids == [[], []]
    # a delete by ids counts the ids asked for, as Chroma's server does (contract §12)
    assert record_store.delete(c, DeleteRequest(Filter(ids=["x"]))) == 1


def test_add_then_get_returns_every_column(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    added = batch(
        ["a", "b"],
        metadatas=[{"n": 1, "f": 2.0, "ok": True, "s": "x", "tags": ["p", "q"]}, None],
        documents=["doc a", None],
        uris=["s3://a", None],
    )
    record_store.add(c, added)

    got = everything(record_store, c)
    assert got["a"]["metadata"] == {"n": 1, "f": 2.0, "ok": True, "s": "x", "tags": ["p", "q"]}
    assert [type(v) for v in got["a"]["metadata"].values()] == [int, float, bool, str, list]
    assert got["a"]["document"] == "doc a" and got["a"]["uri"] == "s3://a"
    assert got["b"] == {
        "embedding": pytest.approx(added.embeddings[1].tolist()),  # type: ignore[index]
        "document": None,
        "uri": None,
        "metadata": None,
    }
    assert record_store.count(c) == 2


def test_add_ignores_existing_ids(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    record_store.add(c, batch(["a"], metadatas=[{"v": 1}], documents=["first"]))
    record_store.add(c, batch(["a", "b"], seed=1, metadatas=[{"v": 2}, None], documents=["x", "y"]))
    got = everything(record_store, c)
    assert got["a"]["metadata"] == {"v": 1} and got["a"]["document"] == "first"
    assert set(got) == {"a", "b"}


def test_update_merges_metadata_and_replaces_only_sent_columns(
    record_store: LanceRecordStore,
) -> None:
    c = factories.collection(dimension=3)
    original = batch(["a"], metadatas=[{"keep": 1, "drop": "x", "change": 1}], documents=["d"])
    record_store.add(c, original)
    record_store.update(
        c,
        RecordBatch(ids=["a"], metadatas=[{"drop": None, "change": "now a string", "new": 2.5}]),
    )
    got = everything(record_store, c)["a"]
    assert got["metadata"] == {"keep": 1, "change": "now a string", "new": 2.5}
    assert got["document"] == "d"
    assert got["embedding"] == pytest.approx(original.embeddings[0].tolist())  # type: ignore[index]


def test_update_removing_every_key_leaves_no_metadata(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    record_store.add(c, batch(["a"], metadatas=[{"k": 1}]))
    record_store.update(c, RecordBatch(ids=["a"], metadatas=[{"k": None}]))
    assert everything(record_store, c)["a"]["metadata"] is None


def test_update_ignores_missing_ids(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    record_store.add(c, batch(["a"]))
    record_store.update(c, batch(["a", "ghost"], seed=3, documents=["new", "boo"]))
    got = everything(record_store, c)
    assert set(got) == {"a"} and got["a"]["document"] == "new"


def test_upsert_inserts_new_and_merges_existing(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    record_store.add(c, batch(["a"], metadatas=[{"x": 1}], documents=["doc"], uris=["u"]))
    update = batch(["a", "b"], seed=5, metadatas=[{"y": 2}, {"z": 3}], documents=[None, "b doc"])
    record_store.upsert(c, update)
    got = everything(record_store, c)
    assert got["a"]["metadata"] == {"x": 1, "y": 2}
    assert got["a"]["document"] == "doc" and got["a"]["uri"] == "u"
    assert got["a"]["embedding"] == pytest.approx(update.embeddings[0].tolist())  # type: ignore[index]
    assert got["b"]["metadata"] == {"z": 3} and got["b"]["document"] == "b doc"


def test_get_by_ids_keeps_storage_order_and_skips_missing(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    record_store.add(c, batch(["a", "b", "c"]))
    result = record_store.get(c, GetRequest(Filter(ids=["c", "zzz", "a"])))
    assert result.ids == ["a", "c"]


def test_get_pages_with_limit_and_offset(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    ids = [f"id{i:02}" for i in range(20)]
    record_store.add(c, batch(ids))
    pages = [record_store.get(c, GetRequest(limit=7, offset=o)).ids for o in (0, 7, 14)]
    assert sum(pages, []) == ids
    assert record_store.get(c, GetRequest(limit=0)).ids == []
    assert record_store.get(c, GetRequest(offset=18)).ids == ids[18:]


def test_get_include_selects_columns(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    record_store.add(c, batch(["a"], metadatas=[{"k": 1}], documents=["d"]))
    result = record_store.get(c, GetRequest(include=("documents",)))
    assert result.documents == ["d"]
    assert result.metadatas is None and result.embeddings is None and result.uris is None


@pytest.mark.parametrize("space", ["l2", "cosine", "ip"])
def test_query_equals_brute_force(record_store: LanceRecordStore, space: Space) -> None:
    rng = np.random.default_rng(7)
    data = rng.normal(size=(300, 8)).astype(np.float32)
    queries = rng.normal(size=(4, 8)).astype(np.float32)
    c = factories.collection(dimension=8, space=space)
    ids = [f"r{i}" for i in range(len(data))]
    record_store.add(c, RecordBatch(ids=ids, embeddings=data))

    result = record_store.query(c, QueryRequest(queries, 10, include=("distances",)))

    for q, got_ids, got_distances in zip(queries, result.ids, result.distances or [], strict=True):
        if space == "l2":
            exact = ((data - q) ** 2).sum(axis=1)
        elif space == "cosine":
            exact = 1 - (data @ q) / (np.linalg.norm(data, axis=1) * np.linalg.norm(q))
        else:
            exact = 1 - data @ q
        order = np.argsort(exact, kind="stable")[:10]
        assert got_ids == [ids[i] for i in order]
        assert got_distances == pytest.approx(exact[order].tolist(), rel=1e-4, abs=1e-4)


def test_query_respects_filters_and_n_results(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=2)
    vectors = np.array([[0, 0], [1, 0], [2, 0], [3, 0]], np.float32)
    record_store.add(
        c,
        RecordBatch(
            ids=["a", "b", "c", "d"],
            embeddings=vectors,
            metadatas=[{"even": True}, {"even": False}, {"even": True}, {"even": False}],
            documents=["zero", "one", "two", "three"],
        ),
    )
    query = np.array([[3, 0]], np.float32)
    only_even = QueryRequest(query, 10, Filter(where={"even": True}), ("metadatas", "distances"))
    result = record_store.query(c, only_even)
    assert result.ids == [["c", "a"]]
    assert result.distances is not None
    assert result.distances == [[pytest.approx(1.0), pytest.approx(9.0)]]
    assert result.metadatas == [[{"even": True}, {"even": True}]]
    by_document = QueryRequest(query, 1, Filter(where_document={"$contains": "o"}))
    assert record_store.query(c, by_document).ids == [["c"]]
    by_ids = QueryRequest(query, 10, Filter(ids=["a", "b"]))
    assert record_store.query(c, by_ids).ids == [["b", "a"]]


def test_delete_by_ids_where_and_limit(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    ids = [f"r{i}" for i in range(10)]
    record_store.add(c, batch(ids, metadatas=[{"n": i} for i in range(10)]))
    assert record_store.delete(c, DeleteRequest(Filter(ids=["r0", "ghost"]))) == 2  # as Chroma
    assert record_store.delete(c, DeleteRequest(Filter(where={"n": {"$gte": 8}}))) == 2
    assert record_store.delete(c, DeleteRequest(Filter(where={"n": {"$lt": 8}}), limit=0)) == 0
    assert record_store.delete(c, DeleteRequest(Filter(where={"n": {"$lt": 8}}), limit=3)) == 3
    assert record_store.count(c) == 4


def test_bad_regex_is_an_invalid_argument(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    record_store.add(c, batch(["a"], documents=["text"]))
    with pytest.raises(InvalidArgumentError, match="regex"):
        record_store.get(c, GetRequest(Filter(where_document={"$regex": "("})))


def test_drop_removes_every_record(record_store: LanceRecordStore) -> None:
    c, other = factories.collection(dimension=3), factories.collection(dimension=3)
    record_store.add(c, batch(["a"]))
    record_store.add(other, batch(["a"]))
    record_store.drop(c.id)
    record_store.drop(c.id)  # idempotent
    assert record_store.count(c) == 0 and record_store.count(other) == 1


def test_reset_removes_every_collection(record_store: LanceRecordStore) -> None:
    first, second = factories.collection(dimension=3), factories.collection(dimension=3)
    record_store.add(first, batch(["a"]))
    record_store.add(second, batch(["b"]))
    record_store.reset()
    assert record_store.count(first) == 0 and record_store.count(second) == 0
    record_store.add(first, batch(["c"]))
    assert record_store.count(first) == 1


def test_concurrent_upserts_of_the_same_ids_keep_one_row_each(
    record_store: LanceRecordStore,
) -> None:
    c = factories.collection(dimension=3)
    record_store.add(c, batch(["seed"]))
    ids = [f"id{i}" for i in range(50)]

    def upsert(seed: int) -> None:
        record_store.upsert(c, batch(ids, seed=seed, metadatas=[{"w": seed}] * len(ids)))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(upsert, range(4)))
    got = record_store.get(c, GetRequest(include=()))
    assert sorted(got.ids) == sorted([*ids, "seed"])


def test_updates_keep_insertion_order(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    record_store.add(c, batch(["a", "b", "c"]))
    record_store.update(c, RecordBatch(ids=["a"], metadatas=[{"k": 1}]))
    record_store.upsert(c, batch(["b", "d"], seed=2))
    assert record_store.get(c, GetRequest()).ids == ["a", "b", "c", "d"]
    assert record_store.get(c, GetRequest(limit=2, offset=1)).ids == ["b", "c"]
    deleted = record_store.delete(c, DeleteRequest(Filter(where={"k": {"$ne": 5}}), limit=2))
    assert deleted == 2
    assert record_store.get(c, GetRequest()).ids == ["c", "d"]


def test_extreme_ints_filter_exactly(record_store: LanceRecordStore) -> None:
    c = factories.collection(dimension=3)
    extremes = [-(2**63), 2**63 - 1, 0]
    record_store.add(c, batch(["min", "max", "zero"], metadatas=[{"n": v} for v in extremes]))
    for value, expected in zip(extremes, ["min", "max", "zero"], strict=True):
        got = record_store.get(c, GetRequest(Filter(where={"n": value}), include=()))
        assert got.ids == [expected]
    below = record_store.get(c, GetRequest(Filter(where={"n": {"$lt": -1.5}}), include=()))
    assert below.ids == ["min"]


def test_collection_ids_lists_collections_with_records(record_store: LanceRecordStore) -> None:
    first, second, empty = (
        factories.collection(dimension=3),
        factories.collection(dimension=3),
        factories.collection(dimension=3),
    )
    record_store.add(first, batch(["a"]))
    record_store.add(second, batch(["b"]))
    assert record_store.count(first) == record_store.count(second) == 1  # in their tables now
    assert sorted(record_store.collection_ids()) == sorted([first.id, second.id])
    assert empty.id not in record_store.collection_ids()
    record_store.drop(first.id)
    assert record_store.collection_ids() == [second.id]


def test_reopened_tables_never_see_another_tables_schema(record_store: LanceRecordStore) -> None:
    """Handles are replaced after reset/drop; nothing cached for an old one may leak into a new
    one (CPython reuses the ids of freed objects)."""
    for round_ in range(25):
        record_store.reset()
        c = factories.collection(dimension=3)
        key = f"k{round_}"
        record_store.add(c, batch(["a", "b"], metadatas=[{key: round_}, {key: -1}]))
        result = record_store.query(
            c, QueryRequest(np.ones((1, 3), np.float32), 2, include=("metadatas",))
        )
        assert result.metadatas is not None
        written = cast("list[dict[str, int]]", result.metadatas[0])  # as added just above
        assert sorted(m[key] for m in written) == [-1, round_]


# ------------------------------------------------------------------ forks


@pytest.mark.filterwarnings(r"ignore:optimize\(cleanup_older_than=0\):UserWarning")
def test_a_fork_keeps_its_version_through_the_source_cleanup_until_unpinned(
    record_store: LanceRecordStore,
) -> None:
    # GIVEN a source of three fragments and a fork of it (every read from storage)
    record_store.policy = dataclasses.replace(
        record_store.policy, retention_seconds=0, fragment_target=1, memory_rows=0
    )
    source = factories.collection(dimension=3)
    for n in range(3):
        record_store.add(
            source, batch([f"s{n}-{i}" for i in range(4)], seed=n, documents=["d"] * 4)
        )
    fork = dataclasses.replace(source, id=str(uuid.uuid4()))
    assert record_store.fork(source, fork.id) == 3
    forked_at = record_store.restore_points(source)[-1].version  # the fork's version
    at_fork = everything(record_store, fork)
    assert at_fork == everything(record_store, source)

    # WHEN the source changes, compacts and removes every older version
    record_store.delete(source, DeleteRequest(filter=Filter(ids=["s0-0"])))
    record_store.upsert(source, batch(["s1-1"], seed=9, documents=["changed"]))
    assert record_store.maintain(source).get("optimized")

    # THEN the fork still reads its version, the only old one the source keeps
    assert everything(record_store, fork) == at_fork
    assert record_store.count(source) == 11
    kept = [point.version for point in record_store.restore_points(source)]
    assert kept[0] == forked_at and len(kept) == 2, kept

    # ... and once the fork lets go, the source cleans up that one too
    record_store.drop(fork.id)
    record_store.unpin(source.id, fork.id)
    record_store.add(source, batch(["late"], seed=4))
    record_store.maintain(source)
    assert forked_at not in [point.version for point in record_store.restore_points(source)]


def test_a_fork_of_a_collection_without_records_has_none(record_store: LanceRecordStore) -> None:
    fork_id = str(uuid.uuid4())
    assert record_store.fork(factories.collection(dimension=3), fork_id) is None
    assert fork_id not in record_store.collection_ids()


def test_reads_in_a_pinned_block_read_the_version_they_checked_first(
    record_store: LanceRecordStore,
) -> None:
    # GIVEN a collection, and another store on the same storage (another process)
    c = factories.collection(dimension=3)
    record_store.add(c, batch(["a", "b"]))
    tables = record_store._tables
    other = LanceRecordStore(
        tables.db.uri, tables.storage_options, record_store.policy, record_store._log
    )
    with record_store.pinned(c):
        assert record_store.count(c) == 2
        # WHEN the other store commits a write while the block runs
        other.add(c, batch(["c"], seed=1))
        # THEN the block's reads keep the version its first read checked
        assert record_store.count(c) == 2
        assert record_store.get(c, GetRequest()).ids == ["a", "b"]
    # AND the next operation sees the write
    assert record_store.count(c) == 3
    assert record_store.get(c, GetRequest()).ids == ["a", "b", "c"]
