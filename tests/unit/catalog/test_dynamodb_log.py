"""What only the DynamoDB write log has: numbers taken before their entries are stored (so a
writer can die in between), entries too large for an item kept in S3, and a request budget."""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from chroma_serverless.catalog.dynamodb.keys import log_entry_key, log_state_key
from chroma_serverless.catalog.dynamodb.log import DynamoDbLog
from chroma_serverless.errors import LogTrimmedError
from chroma_serverless.types import LogState
from tests.support.moto import new_catalog_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client

    from tests.support.moto import Moto

ABANDON = 0.5  # seconds
INLINE = 1024  # bytes


@dataclass
class Place:
    """Where a test's log keeps its items and objects, and the clients it uses."""

    db: DynamoDBClient
    table: str
    s3: S3Client
    bucket: str
    prefix: str

    def log(self, cls: type[DynamoDbLog] = DynamoDbLog) -> DynamoDbLog:
        return cls(
            self.db,
            self.table,
            self.s3,
            self.bucket,
            self.prefix,
            inline_bytes=INLINE,
            abandon_after=ABANDON,
        )

    def objects(self, collection_id: str = "") -> list[str]:
        prefix = f"{self.prefix}/{collection_id}"
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def item(self, collection_id: str, seq: int) -> dict[str, Any] | None:
        key = log_entry_key(collection_id, seq)
        return self.db.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")

    def take_number(self, collection_id: str) -> int:
        """What a writer does before it dies: take a number, never store its entry."""
        response = self.db.update_item(
            TableName=self.table,
            Key=log_state_key(collection_id),
            UpdateExpression="ADD head :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["head"]["N"])


class Calls:
    """The operations a client sends, counted with a botocore hook."""

    def __init__(self, *clients: Any) -> None:
        self.names: list[str] = []
        for client in clients:
            client.meta.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)

    def take(self) -> list[str]:
        names, self.names = self.names, []
        return names


@pytest.fixture
def place(moto: Moto, bucket: str) -> Place:
    return Place(
        moto.client("dynamodb"),
        new_catalog_table(moto),
        moto.client("s3"),
        bucket,
        f"log-{uuid.uuid4().hex[:12]}",
    )


@pytest.fixture
def log(place: Place) -> DynamoDbLog:
    return place.log()


# ---------------------------------------------------------------- gaps


def test_a_number_whose_writer_died_is_closed_as_abandoned(place: Place, log: DynamoDbLog) -> None:
    log.append("c1", b"a")
    assert place.take_number("c1") == 2  # the writer dies here
    assert log.append("c1", b"c") == 3

    started = time.monotonic()
    assert log.entries("c1", 0, 3) == [b"a", None, b"c"]
    assert ABANDON <= time.monotonic() - started < ABANDON + 3  # (a loaded machine is slow)

    marker = place.item("c1", 2)
    assert marker is not None and "abandoned" in marker
    calls = Calls(place.db)
    assert log.entries("c1", 0, 3) == [b"a", None, b"c"]  # closed once and for all
    assert calls.take() == ["Query"]
    assert log.state("c1") == LogState(head=3, folded=0, version=None)

    # the writer was not dead after all: its put fails (so its append takes a new number)
    assert not log._store("c1", 2, {"writer": {"S": "late"}, "body": {"B": b"b"}})
    assert log.entries("c1", 0, 3) == [b"a", None, b"c"]


def test_a_late_writer_whose_number_was_closed_appends_again(
    place: Place, log: DynamoDbLog
) -> None:
    """The writer stalls between taking its number and putting its entry until a reader has
    closed the number; its put then fails and it appends under the next number, keeping the
    S3 object it had already written."""
    reader = log

    class Stalling(DynamoDbLog):
        def _take(self, collection_id: str) -> int:
            seq = super()._take(collection_id)
            if seq == 2:
                assert reader.entries(collection_id, 0, 2) == [b"a", None]
            return seq

    log.append("c1", b"a")
    late = os.urandom(INLINE + 1)
    assert place.log(Stalling).append("c1", late) == 3
    assert reader.entries("c1", 0, 3) == [b"a", None, late]
    assert len(place.objects("c1")) == 1


def test_an_entry_stored_while_a_reader_waits_is_read(place: Place, log: DynamoDbLog) -> None:
    """A slow writer (alive) puts its entry before the reader's patience runs out."""
    seq = place.take_number("c1")

    def store() -> None:
        time.sleep(ABANDON / 5)
        assert log._store("c1", seq, {"writer": {"S": "slow"}, "body": {"B": b"slow"}})

    writer = threading.Thread(target=store)
    writer.start()
    assert log.entries("c1", 0, 1) == [b"slow"]
    writer.join()


def test_a_put_retried_after_its_answer_was_lost_is_the_writers_own(log: DynamoDbLog) -> None:
    """botocore retries a put whose answer was lost; if the first try landed, the retry's
    failed condition must not make the writer append its entry a second time."""
    seq = log._take("c1")
    entry = {"writer": {"S": "w1"}, "body": {"B": b"x"}}
    assert log._store("c1", seq, entry)
    assert log._store("c1", seq, entry)
    assert not log._store("c1", seq, {"writer": {"S": "w2"}, "body": {"B": b"y"}})
    assert log.entries("c1", 0, 1) == [b"x"]


def test_trimmed_numbers_are_neither_waited_for_nor_closed(place: Place, log: DynamoDbLog) -> None:
    for entry in (b"a", b"b", b"c"):
        log.append("c1", entry)
    assert log.mark("c1", log.state("c1"), folded=2, version=1)
    log.trim("c1", 2)

    calls = Calls(place.db)
    with pytest.raises(LogTrimmedError):  # the reader's state is stale: it reads it again
        log.entries("c1", 0, 3)
    assert calls.take() == ["Query", "GetItem"]  # the entries, then the mark: no wait, no put
    assert place.item("c1", 1) is None and place.item("c1", 2) is None
    assert log.entries("c1", 2, 3) == [b"c"]


def test_a_mark_to_no_version_removes_the_version(log: DynamoDbLog) -> None:
    log.append("c1", b"a")
    assert log.mark("c1", log.state("c1"), folded=1, version=4)
    assert log.mark("c1", log.state("c1"), folded=1, version=None)
    assert log.state("c1") == LogState(head=1, folded=1, version=None)
    assert not log.mark("c1", LogState(head=1, folded=1, version=4), folded=1, version=5)


# ---------------------------------------------------------------- large entries in S3


def test_large_entries_go_to_s3_and_trim_removes_their_objects(
    place: Place, log: DynamoDbLog
) -> None:
    small, big, bigger = os.urandom(INLINE), os.urandom(INLINE + 1), os.urandom(2 * INLINE)
    assert [log.append("c1", e) for e in (small, big, bigger)] == [1, 2, 3]
    first, second = place.item("c1", 1), place.item("c1", 2)
    assert first is not None and "body" in first and "s3key" not in first
    assert second is not None and "s3key" in second and "body" not in second
    assert len(place.objects("c1")) == 2
    assert log.entries("c1", 0, 3) == [small, big, bigger]

    log.trim("c1", 2)
    third = place.item("c1", 3)
    assert third is not None and place.objects("c1") == [third["s3key"]["S"]]
    assert log.entries("c1", 2, 3) == [bigger]


def test_drop_and_reset_remove_every_object(place: Place, log: DynamoDbLog) -> None:
    log.append("c1", os.urandom(INLINE + 1))
    log.append("c2", os.urandom(INLINE + 1))
    # a writer that died after writing its object, before taking a number
    place.s3.put_object(Bucket=place.bucket, Key=f"{place.prefix}/c1/orphan", Body=b"x")
    assert len(place.objects("c1")) == 2

    log.drop("c1")
    assert place.objects("c1/") == []
    assert len(place.objects("c2/")) == 1
    assert log.state("c1") == LogState()

    log.reset()
    assert place.objects() == []
    assert log.state("c2") == LogState()


# ---------------------------------------------------------------- requests


def test_each_operation_costs_a_few_requests(place: Place, log: DynamoDbLog) -> None:
    calls = Calls(place.db, place.s3)
    assert log.append("c1", b"small") == 1
    assert calls.take() == ["UpdateItem", "PutItem"]
    assert log.append("c1", os.urandom(INLINE + 1)) == 2
    assert calls.take() == ["PutObject", "UpdateItem", "PutItem"]

    log.entries("c1", 0, 2)
    assert calls.take() == ["Query", "GetObject"]
    state = log.state("c1")
    assert calls.take() == ["GetItem"]
    assert log.mark("c1", state, folded=2, version=1)
    assert calls.take() == ["UpdateItem"]
    assert log.lease("c1", "me", 30)
    log.release("c1", "me")
    assert calls.take() == ["UpdateItem", "UpdateItem"]
    log.trim("c1", 2)
    assert calls.take() == ["Query", "DeleteObjects", "BatchWriteItem"]
