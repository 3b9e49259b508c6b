"""Index maintenance off the request path, triggered after writes (debounced per collection).

Locally a background thread in the server does it; on AWS the data function sends the
collection id to an SQS FIFO queue whose 5-minute deduplication window is the debounce, and the
maintenance function (plus a schedule, for anything missed) runs :func:`maintain_all`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from chroma_serverless.errors import NotFoundError
from chroma_serverless.observe import metrics
from chroma_serverless.service import forks

if TYPE_CHECKING:
    from chroma_serverless.ports import Stores

log = logging.getLogger("chroma_serverless.maintenance")


class NoMaintenance:
    def touch(self, collection_id: str) -> None:
        pass


def maintain(stores: Stores, collection_id: str, growing: bool = False) -> dict[str, Any]:
    """Maintain one collection. One deleted before or during the work is a quiet skip: its
    records are dropped (again) after the last file this maintainer wrote, since a delete
    racing the work may have removed the table while an index build or compaction was still
    writing into it, or the work may have failed because the delete removed its files.

    A failure is logged here, once, and raised; each run is a metric (its duration, whether
    it failed)."""
    with metrics.maintenance_run(collection_id):
        try:
            return _maintain(stores, collection_id, growing)
        except Exception:
            log.exception("maintenance of %s failed", collection_id)
            raise


def _maintain(stores: Stores, collection_id: str, growing: bool) -> dict[str, Any]:
    try:
        collection = stores.catalog.get_collection_by_id(collection_id)
    except NotFoundError:
        return _forget(stores, collection_id)
    try:
        report = stores.records.maintain(collection, growing)
    except Exception:
        if _exists(stores, collection_id):
            raise
        return _forget(stores, collection_id)
    if not _exists(stores, collection_id):
        return _forget(stores, collection_id)
    log.info("maintained %s: %s", collection_id, report)
    return {"collection": collection_id, **report}


def _exists(stores: Stores, collection_id: str) -> bool:
    try:
        stores.catalog.get_collection_by_id(collection_id)
    except NotFoundError:
        return False
    return True


def _forget(stores: Stores, collection_id: str) -> dict[str, Any]:
    """Drop the records of a deleted collection, unless forks still share them. Safe: a
    collection's catalog entry exists before its first record is written and ids are never
    reused, so an id the catalog (read consistently) does not know is never coming back."""
    released = forks.release(stores.catalog, stores.records, collection_id)
    log.info("collection %s was deleted; its records: %s", collection_id, released)
    report = {"collection": collection_id, "skipped": "deleted"}
    return report if released == "dropped" else {**report, "dropped": released}


def maintain_all(stores: Stores) -> list[dict[str, Any]]:
    """Maintain every collection, and drop record tables no collection owns any more (a
    deleted collection's table that forks still share is owned by them).

    Tables are listed before the catalog: a collection's catalog entry always exists before its
    table, so a table listed first whose collection is then missing was deleted (a crash between
    the two steps of a delete, an add racing the delete, or files a maintainer wrote into a
    table being dropped), never one just being created. One collection failing does not stop
    the others.
    """
    tables = stores.records.collection_ids()
    collections = stores.catalog.all_collections()
    owned = {c.id for c in collections} | forks.retained(stores.catalog)
    reports = []
    for collection in collections:
        try:
            reports.append(maintain(stores, collection.id))
        except Exception as exc:  # a real failure of an existing collection: the next run retries
            reports.append({"collection": collection.id, "failed": type(exc).__name__})
    for orphan in sorted(set(tables) - owned):
        released = forks.release(stores.catalog, stores.records, orphan)
        log.info("records of deleted collection %s: %s", orphan, released)
        reports.append(
            {"collection": orphan, "dropped": "orphan" if released == "dropped" else released}
        )
    return reports


class BackgroundMaintainer:
    """A daemon thread: a collection is maintained ``delay`` seconds after its last write, and
    compacted at most ``max_wait`` seconds after the first write since it was last maintained.

    The cap matters under a steady stream of small writes: each one adds a fragment (and a
    version), every read pays for each fragment, and a debounce alone would postpone compaction
    for as long as the writes go on. Such a run only compacts collections below the index
    threshold; a larger one (an ingest) waits for the run after the writes stop, so it is not
    rewritten again and again and its vector index is sized from all of its rows.
    """

    def __init__(self, stores: Stores, delay: float = 5.0, max_wait: float = 2.0) -> None:
        self._stores = stores
        self._delay = delay
        self._max_wait = max_wait
        self._due: dict[str, float] = {}
        self._deadline: dict[str, float] = {}
        self._last: dict[str, float] = {}  # the collection's latest write
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="maintenance", daemon=True)
        self._thread.start()

    def touch(self, collection_id: str) -> None:
        with self._wake:
            now = time.monotonic()
            self._last[collection_id] = now
            deadline = self._deadline.setdefault(collection_id, now + self._max_wait)
            self._due[collection_id] = min(now + self._delay, deadline)
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
                collection_id, due = min(self._due.items(), key=lambda item: item[1])
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                del self._due[collection_id]
                self._deadline.pop(collection_id, None)
                # Still being written (the cap, not the debounce, fired): compact now, and
                # come back for the vector index once the writes have stopped.
                growing = time.monotonic() - self._last[collection_id] < self._delay
                if growing:
                    self._due[collection_id] = self._last[collection_id] + self._delay
                else:
                    del self._last[collection_id]
            # A failure (logged by maintain) leaves the thread alive; the next write retries.
            with contextlib.suppress(Exception):
                maintain(self._stores, collection_id, growing)


class SqsMaintainer:
    """Sends the collection id to the maintenance queue (FIFO): at most one message per
    collection per minute, however many writes arrive; the queue delays each by a minute
    (``template.yaml``), so the maintenance it starts comes after that minute's last write."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs  # a boto3 SQS client
        self._queue_url = queue_url
        self._sent: dict[str, int] = {}  # collection -> the minute this instance last sent

    def touch(self, collection_id: str) -> None:
        """Only the first write of each minute on an instance pays for a request: the queue
        would drop the others as duplicates anyway."""
        window = int(time.time() // 60)
        if self._sent.get(collection_id) == window:
            return
        self._sent[collection_id] = window
        try:
            self._sqs.send_message(
                QueueUrl=self._queue_url,
                MessageBody=collection_id,
                MessageGroupId=collection_id,
                MessageDeduplicationId=f"{collection_id}-{window}",
            )
        except Exception:  # the write succeeded; the scheduled sweep catches up
            log.exception("could not queue maintenance of %s", collection_id)
