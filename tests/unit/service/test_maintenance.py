"""Maintenance runs off the request path: a background worker after writes (local), the CLI,
and on AWS a queue message per written collection consumed by the maintenance function."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from chroma_serverless.catalog.sqlite.catalog import SqliteCatalog
from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.service.maintenance import (
    BackgroundMaintainer,
    SqsMaintainer,
    maintain,
    maintain_all,
)
from chroma_serverless.service.service import Service
from chroma_serverless.settings import Settings
from chroma_serverless.types import Collection, IndexPolicy, RecordBatch
from tests.factories import vectors
from tests.support.lambda_events import load_function
from tests.support.maintenance import errors_logged
from tests.support.moto import new_catalog_table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.moto import Moto

POLICY = IndexPolicy(threshold=500, sub_vector_dims=4, retention_seconds=60)


def fill(service: Service, name: str, rows: int = 600) -> Collection:
    collection = service.create_collection(
        "default_tenant", "default_database", name, None, None, False
    )
    service.add(
        collection, RecordBatch(ids=[f"r{i}" for i in range(rows)], embeddings=vectors(rows))
    )
    return service.catalog.get_collection_by_id(collection.id)


def vector_indexed(store: LanceRecordStore, collection: Collection) -> bool:
    table = store._tables.open(collection.id)
    return table is not None and any(i.columns == ["embedding"] for i in table.list_indices())


def wait_for(condition: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_background_worker_indexes_after_writes(tmp_path: Path) -> None:
    store = LanceRecordStore(str(tmp_path / "records"), policy=POLICY)
    service = Service(SqliteCatalog(tmp_path / "catalog.sqlite3"), store)
    service.maintainer = BackgroundMaintainer(service, delay=0.05)
    collection = fill(service, "docs")
    wait_for(lambda: vector_indexed(store, collection))


def test_background_worker_compacts_while_small_writes_go_on(tmp_path: Path) -> None:
    # GIVEN a worker whose debounce (5 s) is longer than the stream of writes below
    store = LanceRecordStore(str(tmp_path / "records"))
    service = Service(SqliteCatalog(tmp_path / "catalog.sqlite3"), store)
    service.maintainer = BackgroundMaintainer(service, delay=5.0, max_wait=0.3)
    collection = fill(service, "docs")
    # WHEN single-record writes keep coming for 3 s
    deadline = time.monotonic() + 3.0
    for i in range(10**6):
        if time.monotonic() > deadline:
            break
        service.add(collection, RecordBatch(ids=[f"w{i}"], embeddings=vectors(1)))
        time.sleep(0.02)
    # THEN the table was compacted meanwhile: far fewer fragments than writes
    table = store._tables.open(collection.id)
    assert table is not None
    assert i > 40
    assert table.stats()["fragment_stats"]["num_fragments"] < i / 4


def test_background_worker_indexes_a_large_collection_once_writes_stop(tmp_path: Path) -> None:
    # GIVEN a collection past the index threshold that keeps being written
    store = LanceRecordStore(str(tmp_path / "records"), policy=POLICY)
    service = Service(SqliteCatalog(tmp_path / "catalog.sqlite3"), store)
    service.maintainer = BackgroundMaintainer(service, delay=1.0, max_wait=0.2)
    collection = fill(service, "docs")
    deadline = time.monotonic() + 2.0
    i = 0
    while time.monotonic() < deadline:
        service.add(collection, RecordBatch(ids=[f"w{i}"], embeddings=vectors(1)))
        i += 1
        time.sleep(0.02)
    # THEN the index (sized from the rows) waited for the end of the writes
    assert i > 40
    assert not vector_indexed(store, collection)
    wait_for(lambda: vector_indexed(store, collection), timeout=30)


def test_an_ingest_keeps_the_ids_index_current_and_defers_the_rest(tmp_path: Path) -> None:
    # GIVEN a collection past the index threshold (500 rows), still being written
    store = LanceRecordStore(str(tmp_path / "records"), policy=POLICY)
    service = Service(SqliteCatalog(tmp_path / "catalog.sqlite3"), store)
    collection = fill(service, "docs")

    def more(first: int, rows: int) -> None:
        ids = [f"r{i}" for i in range(first, first + rows)]
        service.add(collection, RecordBatch(ids=ids, embeddings=vectors(rows)))

    def indexes() -> dict[str, int]:
        table = store._tables.open(collection.id)
        assert table is not None
        return {i.columns[0]: i.num_unindexed_rows for i in table.list_indices()}

    more(600, 100)
    # WHEN maintenance runs meanwhile: the ids' index, which every add and upsert joins
    # against, covers every row; the vector index and compaction wait for the writes to end
    report = store.maintain(collection, growing=True)
    assert report == {"rows": 700, "deferred": True, "scalar_indexes": ["id"]}
    assert indexes() == {"id": 0}
    # ... and is rebuilt once it misses as many rows as the threshold
    more(700, 499)
    assert store.maintain(collection, growing=True) == {"rows": 1199, "deferred": True}
    more(1199, 1)
    assert store.maintain(collection, growing=True)["scalar_indexes"] == ["id"]
    assert indexes() == {"id": 0}
    # an add of ids already there still changes nothing
    service.add(collection, RecordBatch(ids=["r0", "r1199"], embeddings=vectors(2) + 1))
    assert service.count(collection) == 1200
    table = store._tables.open(collection.id)
    assert table is not None
    assert table.stats()["fragment_stats"]["num_fragments"] == 4


def test_maintain_command(tmp_path: Path) -> None:
    store = LanceRecordStore(str(tmp_path / "records"))
    service = Service(SqliteCatalog(tmp_path / "catalog.sqlite3"), store)
    collection = fill(service, "docs")
    done = subprocess.run(
        [sys.executable, "-m", "chroma_serverless.cli", "maintain", "--path", str(tmp_path)],
        env={
            **os.environ,
            "CHROMA_SERVERLESS_INDEX_THRESHOLD": "500",
            "CHROMA_SERVERLESS_INDEX_SUB_VECTOR_DIMS": "4",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["collection"] == collection.id and report["vector_index"] == "built"
    assert vector_indexed(store, collection)


@pytest.fixture
def aws(moto: Moto, bucket: str) -> Iterator[dict[str, str]]:
    queue = moto.client("sqs").create_queue(
        QueueName=f"maintenance-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"}
    )
    env = {
        "CHROMA_SERVERLESS_MODE": "aws",
        "CHROMA_SERVERLESS_CATALOG_TABLE": new_catalog_table(moto),
        "CHROMA_SERVERLESS_RECORDS_URI": f"s3://{bucket}/{uuid.uuid4().hex}",
        "CHROMA_SERVERLESS_AWS_ENDPOINT": moto.endpoint,
        "CHROMA_SERVERLESS_MAINTENANCE_QUEUE_URL": queue["QueueUrl"],
        "CHROMA_SERVERLESS_INDEX_THRESHOLD": "500",
        "CHROMA_SERVERLESS_INDEX_SUB_VECTOR_DIMS": "4",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


def test_writes_queue_one_message_per_collection_and_the_function_maintains(
    moto: Moto, aws: dict[str, str]
) -> None:
    from chroma_serverless.wiring import build_service

    service = build_service(Settings.from_env())
    assert isinstance(service.maintainer, SqsMaintainer)
    # The deduplication window is the clock's minute: keep the writes inside one.
    if time.time() % 60 > 45:
        time.sleep(60 - time.time() % 60)
    collection = fill(service, "docs")
    service.add(collection, RecordBatch(ids=["more"], embeddings=vectors(1)))  # deduplicated

    sqs = moto.client("sqs")
    received = sqs.receive_message(
        QueueUrl=aws["CHROMA_SERVERLESS_MAINTENANCE_QUEUE_URL"], MaxNumberOfMessages=10
    )["Messages"]
    assert [m["Body"] for m in received] == [collection.id]

    function = load_function("maintenance")
    event = {"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in received]}
    assert function.handler(event, None) == {"batchItemFailures": []}
    assert vector_indexed(service.records, collection)  # type: ignore[arg-type]
    assert function.handler({"source": "aws.events"}, None) == {"maintained": 1}


def test_an_instance_sends_one_message_per_collection_per_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Writes are acknowledged in a few ms: each need not pay for a queue request that the
    queue's deduplication would drop."""
    sent: list[str] = []

    class Queue:
        def send_message(self, **message: str) -> None:
            sent.append(message["MessageDeduplicationId"])

    now = [600.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    maintainer = SqsMaintainer(Queue(), "queue-url")
    for _ in range(5):
        maintainer.touch("a")
    maintainer.touch("b")
    now[0] += 60
    maintainer.touch("a")
    assert sent == ["a-10", "b-10", "a-11"]


def test_the_sweep_drops_records_no_collection_owns(tmp_path: Path) -> None:
    from chroma_serverless.service.maintenance import maintain_all

    store = LanceRecordStore(str(tmp_path / "records"))
    service = Service(SqliteCatalog(tmp_path / "catalog.sqlite3"), store)
    kept = fill(service, "kept", rows=3)
    gone = fill(service, "gone", rows=3)
    service.catalog.delete_collection("default_tenant", "default_database", "gone")  # crash here

    reports = maintain_all(service)

    assert {"collection": gone.id, "dropped": "orphan"} in reports
    assert store.collection_ids() == [kept.id]
    assert store.count(kept) == 3


def test_maintaining_a_collection_deleted_meanwhile_removes_what_it_wrote(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a collection whose delete lands while maintenance works on it, and the work then
    # writes into the dropped table (an index build or compaction committing after the drop)
    collection = fill(service, "docs", rows=3)
    store = service.records
    work = store.maintain

    def racing(target: Collection, growing: bool = False) -> dict[str, Any]:
        service.delete_collection("default_tenant", "default_database", "docs")
        store.add(target, RecordBatch(ids=["late"], embeddings=vectors(1)))
        return work(target)

    monkeypatch.setattr(store, "maintain", racing)

    # WHEN it is maintained
    with caplog.at_level(logging.INFO, logger="chroma_serverless"):
        report = maintain(service, collection.id)

    # THEN it is a quiet skip, and nothing of the collection is left in storage
    assert report["skipped"] == "deleted"
    assert store.collection_ids() == []
    assert errors_logged(caplog) == []


def test_maintenance_failing_because_the_collection_was_deleted_is_a_quiet_skip(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    collection = fill(service, "docs", rows=3)

    def failing(target: Collection, growing: bool = False) -> dict[str, Any]:
        service.delete_collection("default_tenant", "default_database", "docs")
        raise RuntimeError(f"lance error: Not found: {target.id}.lance/_indices/x/page_data.lance")

    monkeypatch.setattr(service.records, "maintain", failing)
    with caplog.at_level(logging.INFO, logger="chroma_serverless"):
        assert maintain(service, collection.id)["skipped"] == "deleted"
        assert maintain_all(service) == []
    assert errors_logged(caplog) == []


def test_maintenance_failing_on_a_live_collection_is_still_an_error(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    collection = fill(service, "docs", rows=3)

    def failing(target: Collection, growing: bool = False) -> dict[str, Any]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(service.records, "maintain", failing)
    with caplog.at_level(logging.INFO, logger="chroma_serverless"):
        with pytest.raises(RuntimeError, match="disk full"):
            maintain(service, collection.id)
        # the sweep reports it and goes on with the rest
        assert maintain_all(service) == [{"collection": collection.id, "failed": "RuntimeError"}]
    # each failed run is logged, once
    assert errors_logged(caplog) == 2 * [
        f"chroma_serverless.maintenance: maintenance of {collection.id} failed"
    ]


def test_a_delete_whose_files_cannot_be_removed_yet_succeeds_and_the_sweep_finishes_it(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a collection whose directory a maintainer keeps writing into while it is deleted
    collection = fill(service, "docs", rows=3)
    store = service.records
    assert isinstance(store, LanceRecordStore)
    store.maintain(collection)  # its writes folded into its table
    drop_table = store._tables.db.drop_table

    def busy(name: str) -> None:
        raise RuntimeError("lance error: LanceError(IO): Directory not empty (os error 39)")

    monkeypatch.setattr(store._tables.db, "drop_table", busy)

    # WHEN it is deleted, THEN the delete succeeds and the collection is gone for the user
    with caplog.at_level(logging.INFO, logger="chroma_serverless"):
        service.delete_collection("default_tenant", "default_database", "docs")
    assert service.list_collections("default_tenant", "default_database", None, None) == []
    assert errors_logged(caplog) == []
    assert store.collection_ids() == [collection.id]

    # AND once the files can be removed, the sweep removes them
    monkeypatch.setattr(store._tables.db, "drop_table", drop_table)
    assert maintain_all(service) == [{"collection": collection.id, "dropped": "orphan"}]
    assert store.collection_ids() == []


def test_a_reset_racing_a_maintainer_still_resets(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(service, "one", rows=3)
    fill(service, "two", rows=3)
    store = service.records
    assert isinstance(store, LanceRecordStore)

    def busy() -> None:
        raise RuntimeError("lance error: LanceError(IO): Directory not empty (os error 39)")

    monkeypatch.setattr(
        store._tables.db, "drop_all_tables", busy
    )  # fails once, tables one by one then
    assert service.reset() is True
    assert store.collection_ids() == []
    assert service.list_collections("default_tenant", "default_database", None, None) == []
