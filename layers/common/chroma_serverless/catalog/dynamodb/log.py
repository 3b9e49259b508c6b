"""The AWS write log: :class:`~chroma_serverless.ports.Log` in the catalog's DynamoDB table
(key layout: ``keys.py``), with the entries too large for an item in S3.

Per collection, one state item holds the head (the last number given out), the fold mark and
the lease; each entry is an item under its number. An append takes a number with an atomic
``ADD head :one`` (it never conflicts) and then puts its entry under it, conditioned on the slot
being free: two requests for an entry held inline. A large entry's bytes go to S3 first, under a
key that does not depend on the number (``<prefix>/<collection id>/<writer uuid>``), so the
object is in place before any reader can see the item.

A writer that dies between taking its number and putting its entry leaves a gap. A reader that
finds one re-reads the slot after 10–20 ms (a live writer's put is a few ms away), then less and
less often (at most every 0.2 s); once it has been empty for ``abandon_after`` seconds the
reader closes it with an ``abandoned`` marker, put on the same condition as the entry. Only
one of the two puts wins: if the marker does, the late writer takes a new number and puts again
(its S3 object is reused), so an acknowledged entry is always readable in order. Every entry
item carries its writer's id, so a put that landed but whose answer was lost (and was retried
by botocore) is recognised as the writer's own rather than as a marker.
"""

from __future__ import annotations

import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chroma_serverless.catalog.dynamodb.keys import (
    ENTRY_PREFIX,
    LOG_PREFIX,
    NOT_EXISTS,
    entry_sk,
    log_entry_key,
    log_state_key,
)
from chroma_serverless.catalog.dynamodb.table import Table, code
from chroma_serverless.errors import LogTrimmedError
from chroma_serverless.types import LogState

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client

INLINE_BYTES = 64 * 1024  # larger entries go to S3 (an item holds at most 400 KB)
ABANDON_AFTER = 3.0  # seconds a number may stay without its entry before readers close it
# An abandoned marker is kept this long after it closed its slot, past trims: a writer that
# took the number and stalled (at most a Lambda invocation's 15 minutes) must find it there,
# or its late entry would land in a free slot below the fold mark and never be read.
MARKER_KEEP_SECONDS = 3600
POLL_FIRST, POLL_MAX = 0.015, 0.2  # seconds between re-reads of a gap (growing, ±1/3)
FETCHERS = 8  # S3 objects of one read fetched at once
BATCH_GET_MAX = 100  # keys per BatchGetItem
BATCH_WRITE_MAX = 25  # requests per BatchWriteItem
DELETE_OBJECTS_MAX = 1000  # keys per DeleteObjects
FAILED = "ConditionalCheckFailedException"

Item = dict[str, Any]


class DynamoDbLog(Table):
    """:class:`~chroma_serverless.ports.Log` in the catalog's table and ``bucket`` (see module
    doc); S3 objects are kept under ``prefix``."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        s3: S3Client,
        bucket: str,
        prefix: str,
        inline_bytes: int = INLINE_BYTES,
        abandon_after: float = ABANDON_AFTER,
    ) -> None:
        super().__init__(client, table)
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._inline_bytes = inline_bytes
        self._abandon_after = abandon_after

    # ------------------------------------------------------------------ state and marks

    def state(self, collection_id: str) -> LogState:
        item = self._db.get_item(
            TableName=self._table,
            Key=log_state_key(collection_id),
            ConsistentRead=True,
            ProjectionExpression="head, folded, version",
        ).get("Item", {})
        version = item.get("version")
        return LogState(
            head=int(item.get("head", {}).get("N", 0)),
            folded=int(item.get("folded", {}).get("N", 0)),
            version=None if version is None else int(version["N"]),
        )

    def mark(
        self, collection_id: str, expected: LogState, folded: int, version: int | None
    ) -> bool:
        # The state item may not exist yet (a version moved before the first append): absent
        # numbers count as 0 and an absent version as None, as in LogState().
        conditions = [
            "(attribute_not_exists(folded) OR folded = :was)"
            if expected.folded == 0
            else "folded = :was",
            "attribute_not_exists(version)" if expected.version is None else "version = :had",
        ]
        values = {":was": _n(expected.folded), ":folded": _n(folded)}
        if expected.version is not None:
            values[":had"] = _n(expected.version)
        if folded > 0:  # the mark never passes the head (an absent head is 0)
            conditions.append("head >= :folded")
        expression = "SET folded = :folded REMOVE version"
        if version is not None:
            expression = "SET folded = :folded, version = :version"
            values[":version"] = _n(version)
        return self._update_state(collection_id, expression, conditions, values)

    # ------------------------------------------------------------------ the lease

    def lease(self, collection_id: str, holder: str, seconds: float) -> bool:
        now = time.time()
        return self._update_state(
            collection_id,
            "SET holder = :me, held_until = :until",
            ["(attribute_not_exists(holder) OR holder = :me OR held_until < :now)"],
            {":me": {"S": holder}, ":until": _n(now + seconds), ":now": _n(now)},
        )

    def release(self, collection_id: str, holder: str) -> None:
        self._update_state(
            collection_id, "REMOVE holder, held_until", ["holder = :me"], {":me": {"S": holder}}
        )

    def _update_state(
        self, collection_id: str, expression: str, conditions: list[str], values: Item
    ) -> bool:
        """One conditional update of the state item; ``False`` if a condition failed."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=log_state_key(collection_id),
                UpdateExpression=expression,
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if code(exc) == FAILED:
                return False
            raise
        return True

    # ------------------------------------------------------------------ appends

    def append(self, collection_id: str, entry: bytes) -> int:
        writer = uuid.uuid4().hex
        item: Item = {"writer": {"S": writer}}
        if len(entry) > self._inline_bytes:
            key = f"{self._objects(collection_id)}{writer}"
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=entry)
            item["s3key"] = {"S": key}
        else:
            item["body"] = {"B": entry}
        while True:
            seq = self._take(collection_id)
            if self._store(collection_id, seq, item):
                return seq

    def _take(self, collection_id: str) -> int:
        """The next number (atomic; creates the state item on the first append)."""
        response = self._db.update_item(
            TableName=self._table,
            Key=log_state_key(collection_id),
            UpdateExpression="ADD head :one",
            ExpressionAttributeValues={":one": _n(1)},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["head"]["N"])

    def _store(self, collection_id: str, seq: int, item: Item) -> bool:
        """Put ``item`` in slot ``seq`` if it is free; ``False`` if a reader closed it first."""
        old = self._put_if_free({**log_entry_key(collection_id, seq), **item})
        return old is None or old.get("writer") == item["writer"]  # ours: a retried put

    def _put_if_free(self, item: Item) -> Item | None:
        """Put ``item`` if its slot is free; else the item holding the slot."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=NOT_EXISTS,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if code(exc) != FAILED:
                raise
            held: Item | None = exc.response.get("Item")  # type: ignore[assignment]
            return held or self._get({"pk": item["pk"], "sk": item["sk"]}) or {}
        return None

    # ------------------------------------------------------------------ reads

    def entries(self, collection_id: str, after: int, upto: int) -> list[bytes | None]:
        if upto <= after:
            return []
        slots = {_seq(i): i for i in self._range(collection_id, after + 1, upto)}
        missing = [seq for seq in range(after + 1, upto + 1) if seq not in slots]
        if missing:
            slots.update(self._wait_for(collection_id, missing))
        return self._payloads([slots.get(seq) for seq in range(after + 1, upto + 1)])

    def _range(
        self, collection_id: str, first: int, last: int, projection: str | None = None
    ) -> Iterator[Item]:
        """The entry items numbered ``first .. last`` in order (one consistent Query)."""
        extra: dict[str, Any] = {} if projection is None else {"ProjectionExpression": projection}
        for page in self._db.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={
                ":pk": {"S": f"{LOG_PREFIX}{collection_id}"},
                ":first": {"S": entry_sk(first)},
                ":last": {"S": entry_sk(last)},
            },
            ConsistentRead=True,
            **extra,
        ):
            yield from page["Items"]

    def _wait_for(self, collection_id: str, missing: list[int]) -> dict[int, Item]:
        """The items of the numbers ``missing`` from a read, once they arrive or are closed.

        A missing number at or below the fold mark was trimmed (the folder read it before
        marking): the reader's state is stale (:class:`LogTrimmedError`). One above the head
        has not been given out and is not waited for."""
        found: dict[int, Item] = {}
        waiting = self._open(collection_id, missing)
        deadline = time.monotonic() + self._abandon_after
        pause = POLL_FIRST
        while waiting:
            time.sleep(random.uniform(pause * 2 / 3, pause * 4 / 3))
            pause = min(pause * 1.5, POLL_MAX)
            found.update(self._get_many(collection_id, waiting))
            waiting = [seq for seq in waiting if seq not in found]
            if waiting and time.monotonic() >= deadline:
                for seq in self._open(collection_id, waiting):
                    marker = {
                        **log_entry_key(collection_id, seq),
                        "abandoned": {"BOOL": True},
                        "closed_at": _n(int(time.time())),
                    }
                    found[seq] = self._put_if_free(marker) or marker  # or the late entry
                waiting = []
        return found

    def _open(self, collection_id: str, missing: list[int]) -> list[int]:
        """The numbers of ``missing`` that may still get their entry (none was trimmed)."""
        state = self.state(collection_id)
        if min(missing) <= state.folded:
            raise LogTrimmedError(f"entries of {collection_id} up to {state.folded} were trimmed")
        return [seq for seq in missing if seq <= state.head]

    def _get_many(self, collection_id: str, seqs: list[int]) -> dict[int, Item]:
        found: dict[int, Item] = {}
        for start in range(0, len(seqs), BATCH_GET_MAX):
            keys = [log_entry_key(collection_id, s) for s in seqs[start : start + BATCH_GET_MAX]]
            request: Any = {self._table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self._table, []):
                    found[_seq(item)] = item
                request = response.get("UnprocessedKeys") or None
        return found

    def _payloads(self, items: list[Item | None]) -> list[bytes | None]:
        """The entries of ``items`` in order; those held in S3 fetched in parallel."""
        keys: list[str] = [i["s3key"]["S"] for i in items if i is not None and "s3key" in i]
        fetched: dict[str, bytes | None]
        if len(keys) > 1:
            with ThreadPoolExecutor(min(FETCHERS, len(keys))) as pool:
                fetched = dict(zip(keys, pool.map(self._fetch, keys), strict=True))
        else:
            fetched = {key: self._fetch(key) for key in keys}

        def payload(item: Item | None) -> bytes | None:
            if item is None or "abandoned" in item:
                return None
            if "s3key" in item:
                return fetched[item["s3key"]["S"]]
            return bytes(item["body"]["B"])

        return [payload(i) for i in items]

    def _fetch(self, key: str) -> bytes | None:
        try:
            return self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if code(exc) == "NoSuchKey":  # trimmed since the item was read
                raise LogTrimmedError(f"{key} was trimmed") from exc
            raise

    # ------------------------------------------------------------------ forgetting

    def trim(self, collection_id: str, upto: int) -> None:
        if upto < 1:
            return
        items = list(self._range(collection_id, 1, upto, projection="pk, sk, s3key, closed_at"))
        # Objects first: a trim that dies half-way leaves items whose objects are gone (read
        # as trimmed, and removed by the next trim), never objects nobody refers to.
        self._delete_objects([i["s3key"]["S"] for i in items if "s3key" in i])
        kept = time.time() - MARKER_KEEP_SECONDS
        self._delete_items(
            [i for i in items if "closed_at" not in i or int(i["closed_at"]["N"]) < kept]
        )

    def drop(self, collection_id: str) -> None:
        self._delete_objects(self._listing(self._objects(collection_id)))
        items: list[Item] = []
        for page in self._db.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{LOG_PREFIX}{collection_id}"}},
            ConsistentRead=True,
            ProjectionExpression="pk, sk",
        ):
            items.extend(page["Items"])
        self._delete_items(items)

    def reset(self) -> None:
        self._delete_objects(self._listing(f"{self._prefix}/"))
        items: list[Item] = []
        for page in self._db.get_paginator("scan").paginate(
            TableName=self._table,
            ConsistentRead=True,
            ProjectionExpression="pk, sk",
            FilterExpression="begins_with(pk, :log)",
            ExpressionAttributeValues={":log": {"S": LOG_PREFIX}},
        ):
            items.extend(page["Items"])
        self._delete_items(items)

    def _objects(self, collection_id: str) -> str:
        """The prefix of the collection's S3 objects."""
        return f"{self._prefix}/{collection_id}/"

    def _listing(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=prefix
        ):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def _delete_objects(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_OBJECTS_MAX):
            batch = keys[start : start + DELETE_OBJECTS_MAX]
            response = self._s3.delete_objects(
                Bucket=self._bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            if response.get("Errors"):
                error = response["Errors"][0]
                raise RuntimeError(f"S3 could not delete {error.get('Key')}: {error}")

    def _delete_items(self, items: list[Item]) -> None:
        for start in range(0, len(items), BATCH_WRITE_MAX):
            batch = items[start : start + BATCH_WRITE_MAX]
            deletes = [{"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in batch]
            request: Any = {self._table: deletes}
            for attempt in range(10):
                response = self._db.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or None
                if not request:
                    break
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
            if request:
                raise RuntimeError(f"DynamoDB left {len(request[self._table])} deletes unprocessed")


def _n(number: float) -> dict[str, str]:
    return {"N": str(number)}


def _seq(item: Item) -> int:
    return int(item["sk"]["S"].removeprefix(ENTRY_PREFIX))
