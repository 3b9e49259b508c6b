"""Maintenance runs off the request path: a background worker after writes (local), the CLI,
and on AWS a queue message per written collection consumed by the maintenance function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from chroma_serverless.catalog.sqlite import SqliteCatalog
from chroma_serverless.maintenance import BackgroundMaintainer, SqsMaintainer
from chroma_serverless.records import LanceRecordStore
from chroma_serverless.service import Service
from chroma_serverless.settings import Settings
from chroma_serverless.types import Collection, IndexPolicy, RecordBatch
from tests.conftest import new_catalog_table
from tests.lambda_events import load_function

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.conftest import Moto

POLICY = IndexPolicy(threshold=500, sub_vector_dims=4, retention_seconds=60)


def vectors(n: int) -> Any:
    return np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)


def fill(service: Service, name: str, rows: int = 600) -> Collection:
    collection = service.create_collection(
        "default_tenant", "default_database", name, None, None, False
    )
    service.add(
        collection, RecordBatch(ids=[f"r{i}" for i in range(rows)], embeddings=vectors(rows))
    )
    return service.catalog.get_collection_by_id(collection.id)


def vector_indexed(store: LanceRecordStore, collection: Collection) -> bool:
    table = store._open(collection.id)
    return table is not None and any(i.columns == ["embedding"] for i in table.list_indices())


def wait_for(condition: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_background_worker_indexes_after_writes(tmp_path: Path) -> None:
    store = LanceRecordStore(str(tmp_path / "records"), policy=POLICY)
    service = Service(SqliteCatalog(tmp_path / "catalog.sqlite3"), store, Settings(path=tmp_path))
    service.maintainer = BackgroundMaintainer(service, delay=0.05)
    collection = fill(service, "docs")
    wait_for(lambda: vector_indexed(store, collection))


def test_maintain_command(tmp_path: Path) -> None:
    store = LanceRecordStore(str(tmp_path / "records"))
    service = Service(SqliteCatalog(tmp_path / "catalog.sqlite3"), store, Settings(path=tmp_path))
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
    from chroma_serverless.app import build_service

    service = build_service(Settings.from_env())
    assert isinstance(service.maintainer, SqsMaintainer)
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


def test_the_sweep_drops_records_no_collection_owns(tmp_path: Path) -> None:
    from chroma_serverless.maintenance import maintain_all

    store = LanceRecordStore(str(tmp_path / "records"))
    service = Service(SqliteCatalog(tmp_path / "catalog.sqlite3"), store, Settings(path=tmp_path))
    kept = fill(service, "kept", rows=3)
    gone = fill(service, "gone", rows=3)
    service.catalog.delete_collection("default_tenant", "default_database", "gone")  # crash here

    reports = maintain_all(service)

    assert {"collection": gone.id, "dropped": "orphan"} in reports
    assert store.collection_ids() == [kept.id]
    assert store.count(kept) == 3
