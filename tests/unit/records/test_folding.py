"""The write log in front of a table: a tail folds to exactly what applying its writes one by
one gives, a folder that dies is redone without loss or duplication, and many writers lose
nothing."""

from __future__ import annotations

import dataclasses
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from chroma_serverless.catalog.sqlite.log import SqliteLog
from chroma_serverless.errors import BusyError
from chroma_serverless.records import entries, folding
from chroma_serverless.records import store as store_module
from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.types import (
    DeleteRequest,
    Filter,
    GetRequest,
    LogState,
    QueryRequest,
    RecordBatch,
    SparseVector,
)
from tests import factories

if TYPE_CHECKING:
    from pathlib import Path

    from chroma_serverless.types import Collection, Include

ALL: tuple[Include, ...] = ("embeddings", "documents", "uris", "metadatas")


def everything(store: LanceRecordStore, c: Collection) -> list[tuple[Any, ...]]:
    """Every record in insertion order, with everything."""
    got = store.get(c, GetRequest(include=ALL))
    assert got.embeddings is not None and got.documents is not None
    assert got.uris is not None and got.metadatas is not None
    return [
        (i, got.embeddings[n].round(6).tolist(), got.documents[n], got.uris[n], got.metadatas[n])
        for n, i in enumerate(got.ids)
    ]


def random_write(rng: random.Random, step: int) -> tuple[str, RecordBatch]:
    ids = rng.sample([f"r{i}" for i in range(8)], rng.randint(1, 3))
    operation = rng.choice(["add", "add", "upsert", "upsert", "update", "delete"])
    if operation == "delete":
        return operation, RecordBatch(ids=ids)
    metadatas: list[Any] = [
        {"n": step, "k": rng.choice(["a", "b", None])} if rng.random() < 0.7 else None for _ in ids
    ]
    if operation == "add":  # add takes no None values
        metadatas = [None if m is None else {k: v for k, v in m.items() if v} for m in metadatas]
    embeddings = factories.vectors(len(ids), dimension=3, seed=step)
    return operation, RecordBatch(
        ids=ids,
        embeddings=None if operation == "update" and rng.random() < 0.5 else embeddings,
        metadatas=metadatas,
        documents=[f"doc {step}" for _ in ids] if rng.random() < 0.7 else None,
        uris=[f"uri-{step}" for _ in ids] if rng.random() < 0.3 else None,
    )


def apply(store: LanceRecordStore, c: Collection, operation: str, batch: RecordBatch) -> None:
    if operation == "delete":
        store.delete(c, DeleteRequest(Filter(ids=batch.ids)))
    else:
        getattr(store, operation)(c, batch)


@pytest.mark.parametrize("fold_at", [0, store_module.FOLD_AT], ids=["folded", "read-around"])
@pytest.mark.parametrize("seed", range(4))
def test_a_tail_reads_as_its_writes_give_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, fold_at: int
) -> None:
    """Against the table layer alone (every write its own commit) as the reference: adds of
    present ids ignored, upserts merging metadata per key, updates of missing ids ignored,
    deletes and re-adds, with tails of every length read around (gets, counts and queries
    answered from the version and the tail) or folded by the reads in between."""
    monkeypatch.setattr(store_module, "FOLD_AT", fold_at)
    c = factories.collection(dimension=3)
    logged = LanceRecordStore(str(tmp_path / "logged"), log=SqliteLog(tmp_path / "log.sqlite3"))
    reference = LanceRecordStore(str(tmp_path / "reference"))
    rng = random.Random(seed)
    for step in range(60):
        operation, batch = random_write(rng, step)
        apply(logged, c, operation, batch)
        apply(reference, c, operation, batch)
        if rng.random() < 0.25:
            assert everything(logged, c) == everything(reference, c)
            assert logged.count(c) == reference.count(c)
            assert nearest(logged, c, step) == nearest(reference, c, step)
            page = GetRequest(Filter(where={"k": "a"}), limit=2, offset=1, include=())
            assert logged.get(c, page).ids == reference.get(c, page).ids
    assert everything(logged, c) == everything(reference, c)
    logged.maintain(c)
    assert everything(logged, c) == everything(reference, c)


def nearest(store: LanceRecordStore, c: Collection, seed: int) -> list[Any]:
    query = QueryRequest(
        factories.vectors(2, dimension=3, seed=seed + 1000),
        3,
        Filter(where={"n": {"$gte": 0}}) if seed % 2 else Filter(),
        include=("distances", "metadatas"),
    )
    found = store.query(c, query)
    assert found.distances is not None
    return [found.ids, np.round(found.distances, 4).tolist(), found.metadatas]


def test_a_folder_that_dies_before_moving_the_mark_is_redone_to_the_same_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = factories.collection(dimension=3)
    log = SqliteLog(tmp_path / "log.sqlite3")
    store = LanceRecordStore(str(tmp_path / "records"), log=log)
    store.add(
        c,
        RecordBatch(
            ids=["a", "b"], embeddings=factories.vectors(2, dimension=3), documents=["A", "B"]
        ),
    )
    assert store.count(c) == 2
    store.add(c, RecordBatch(ids=["c"], embeddings=factories.vectors(1, dimension=3, seed=1)))
    store.update(c, RecordBatch(ids=["a"], metadatas=[{"k": 1}]))
    store.delete(c, DeleteRequest(Filter(ids=["b"])))

    def dies(*_: object) -> bool:
        raise RuntimeError("the folder's instance was killed")

    with monkeypatch.context() as patched:  # the fold commits, then its instance dies
        patched.setattr(log, "mark", dies)
        with pytest.raises(RuntimeError, match="killed"):
            store.maintain(c)
    assert log.state(c.id).folded == 1  # the mark did not move: the tail is still there
    # a fresh instance (nothing cached) folds again over what the dead one committed
    fresh = LanceRecordStore(str(tmp_path / "records"), log=log)
    got = fresh.get(c, GetRequest(include=("documents", "metadatas")))
    assert got.ids == ["a", "c"]
    assert got.documents == ["A", None]
    assert got.metadatas == [{"k": 1}, None]
    assert fresh.count(c) == store.count(c) == 2


def test_reads_on_other_instances_see_every_acknowledged_write(tmp_path: Path) -> None:
    """Eight writers on their own store (instances) sharing one log and table, and a reader
    on another: each write is visible to a read that starts after it was acknowledged, and at
    the end every record is there once."""
    log = SqliteLog(tmp_path / "log.sqlite3")
    c = factories.collection(dimension=3)

    def instance() -> LanceRecordStore:
        return LanceRecordStore(str(tmp_path / "records"), log=log)

    reader = instance()
    unseen: list[str] = []
    lock = threading.Lock()

    def write(writer: int) -> None:
        store = instance()
        for n in range(8):
            ids = [f"w{writer}-{n}-{i}" for i in range(5)]
            store.add(c, RecordBatch(ids=ids, embeddings=factories.vectors(5, dimension=3, seed=n)))
            got = reader.get(c, GetRequest(filter=Filter(ids=ids), include=()))
            if sorted(got.ids) != sorted(ids):
                with lock:
                    unseen.extend(set(ids) - set(got.ids))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    assert unseen == []
    assert instance().count(c) == 8 * 8 * 5
    assert len(set(instance().get(c, GetRequest(include=())).ids)) == 320


def test_a_read_waits_for_another_folder_then_answers_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folding, "WAIT_SECONDS", 0.3)
    log = SqliteLog(tmp_path / "log.sqlite3")
    store = LanceRecordStore(str(tmp_path / "records"), log=log)
    c = factories.collection(dimension=3)
    store.add(c, RecordBatch(ids=["a"], embeddings=factories.vectors(1, dimension=3)))
    assert log.lease(c.id, "another instance", 60)
    with pytest.raises(BusyError, match="busy"):
        store.count(c)
    log.release(c.id, "another instance")
    assert store.count(c) == 1


def test_queries_and_searches_read_one_folded_version(tmp_path: Path) -> None:
    store = LanceRecordStore(str(tmp_path / "records"), log=SqliteLog(tmp_path / "log.sqlite3"))
    c = factories.collection(dimension=3)
    vectors = factories.vectors(3, dimension=3, seed=2)
    store.add(c, RecordBatch(ids=["a", "b", "c"], embeddings=vectors))
    with store.pinned(c):
        found = store.query(c, QueryRequest(vectors[:1], 1))
        store.add(c, RecordBatch(ids=["d"], embeddings=vectors[:1]))
        assert store.count(c) == 3  # the block's version
    assert found.ids == [["a"]]
    assert store.count(c) == 4


def test_entries_keep_every_value_exactly() -> None:
    batch = RecordBatch(
        ids=["a", "ü", ""],
        embeddings=np.array([[0.1, -2.5e-30, 3], [1, 2, 3], [np.float32(1 / 3), 0, 0]], np.float32),
        metadatas=[
            {"s": "x", "i": 2**62, "f": 0.1, "b": True, "l": [1, 2], "gone": None},
            None,
            {"sparse": SparseVector((1, 7), (0.5, 0.25), ("a", "b")), "e": 1e-300},
        ],
        documents=["d", None, "😀"],
        uris=None,
    )
    entry = entries.decode(entries.encode(entries.Entry("upsert", batch, 123)))
    assert (entry.operation, entry.clock) == ("upsert", 123)
    assert entry.batch.ids == batch.ids
    assert entry.batch.embeddings is not None and batch.embeddings is not None
    assert entry.batch.embeddings.dtype == np.float32
    assert entry.batch.embeddings.tobytes() == batch.embeddings.tobytes()
    assert entry.batch.metadatas == batch.metadatas
    assert entry.batch.documents == batch.documents
    assert entry.batch.uris is None
    deleted = entries.decode(entries.encode(entries.Entry("delete", RecordBatch(ids=["x"]), 5)))
    assert deleted.batch == RecordBatch(ids=["x"])


def test_a_maintainer_that_read_the_collection_before_its_first_write_folds_it(
    tmp_path: Path,
) -> None:
    """The maintainer's view of a collection may predate the write that fixed its dimension."""
    store = LanceRecordStore(str(tmp_path / "records"), log=SqliteLog(tmp_path / "log.sqlite3"))
    written = factories.collection(dimension=3)
    stale = dataclasses.replace(written, dimension=None)
    store.add(written, RecordBatch(ids=["a"], embeddings=factories.vectors(1, dimension=3)))
    store.maintain(stale)
    assert store.collection_ids() == [written.id]
    assert store.count(written) == 1


def test_a_read_takes_the_state_its_request_started_reading(tmp_path: Path) -> None:
    """A record route says it will read before its catalog read; the log's state is read once,
    beside it, and is one read after the request began."""
    log = SqliteLog(tmp_path / "log.sqlite3")
    store = LanceRecordStore(str(tmp_path / "records"), log=log)
    c = factories.collection(dimension=3)
    store.add(c, RecordBatch(ids=["a"], embeddings=factories.vectors(1, dimension=3)))
    assert store.count(c) == 1
    reads: list[str] = []
    state = log.state

    def counted(collection_id: str) -> LogState:
        reads.append(collection_id)
        return state(collection_id)

    log.state = counted  # type: ignore[method-assign]
    store.expect(c.id)
    assert store.count(c) == 1
    assert reads == [c.id]  # the one started by expect()
    store.add(c, RecordBatch(ids=["b"], embeddings=factories.vectors(1, dimension=3, seed=1)))
    assert store.count(c) == 2  # nothing expected: read now
    assert reads == [c.id, c.id]


def test_a_read_whose_tail_is_folded_meanwhile_still_sees_every_write(tmp_path: Path) -> None:
    """A read that took the log's state just before another instance folded and trimmed the
    tail reads the folded version instead, never the old version without the tail."""
    log = SqliteLog(tmp_path / "log.sqlite3")
    reader = LanceRecordStore(str(tmp_path / "records"), log=log)
    folder = LanceRecordStore(str(tmp_path / "records"), log=log)
    c = factories.collection(dimension=3)
    reader.add(c, RecordBatch(ids=["a"], embeddings=factories.vectors(1, dimension=3)))
    reader.maintain(c)
    reader.add(c, RecordBatch(ids=["b", "c"], embeddings=factories.vectors(2, dimension=3)))
    reader.expect(c.id)  # the state is read now, with the tail unfolded ...
    folding._EXPECTED.get()[c.id].result()  # type: ignore[index]
    folder.maintain(c)  # ... and another instance folds and trims it before the read
    assert sorted(reader.get(c, GetRequest(include=())).ids) == ["a", "b", "c"]
