"""Index maintenance off the request path, triggered after writes (debounced per collection).

Locally a background thread in the server does it; on AWS the data function sends the
collection id to an SQS FIFO queue whose 5-minute deduplication window is the debounce, and the
maintenance function (plus a schedule, for anything missed) runs :func:`maintain_all`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from chroma_serverless.errors import NotFoundError

if TYPE_CHECKING:
    from chroma_serverless.service import Service
    from chroma_serverless.settings import Settings

log = logging.getLogger("chroma_serverless.maintenance")


class Maintainer(Protocol):
    def touch(self, collection_id: str) -> None:
        """A collection was written: maintain it soon (not on the request path)."""


class NoMaintenance:
    def touch(self, collection_id: str) -> None:
        pass


def maintain(service: Service, collection_id: str) -> dict[str, Any]:
    try:
        collection = service.catalog.get_collection_by_id(collection_id)
    except NotFoundError:
        return {"collection": collection_id, "skipped": "deleted"}
    report = service.records.maintain(collection)
    log.info("maintained %s: %s", collection_id, report)
    return {"collection": collection_id, **report}


def maintain_all(service: Service) -> list[dict[str, Any]]:
    """Maintain every collection, and drop record tables no collection owns any more.

    Tables are listed before the catalog: a collection's catalog entry always exists before its
    table, so a table listed first whose collection is then missing was deleted (a crash between
    the two steps of a delete, or an add racing the delete), never one just being created.
    """
    tables = service.records.collection_ids()
    collections = service.catalog.all_collections()
    owned = {c.id for c in collections}
    reports = [maintain(service, c.id) for c in collections]
    for orphan in sorted(set(tables) - owned):
        service.records.drop(orphan)
        log.info("dropped records of deleted collection %s", orphan)
        reports.append({"collection": orphan, "dropped": "orphan"})
    return reports


class BackgroundMaintainer:
    """A daemon thread: a collection is maintained ``delay`` seconds after its last write."""

    def __init__(self, service: Service, delay: float = 5.0) -> None:
        self._service = service
        self._delay = delay
        self._due: dict[str, float] = {}
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="maintenance", daemon=True)
        self._thread.start()

    def touch(self, collection_id: str) -> None:
        with self._wake:
            self._due[collection_id] = time.monotonic() + self._delay
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
            try:
                maintain(self._service, collection_id)
            except Exception:  # keep the thread alive; the next write retries
                log.exception("maintenance of %s failed", collection_id)


class SqsMaintainer:
    """Sends the collection id to the maintenance queue (FIFO): at most one message per
    collection per deduplication window, however many writes arrive."""

    def __init__(self, settings: Settings, queue_url: str) -> None:
        import boto3

        self._sqs = boto3.client(
            "sqs", endpoint_url=settings.aws_endpoint, region_name=settings.aws_region
        )
        self._queue_url = queue_url

    def touch(self, collection_id: str) -> None:
        window = int(time.time() // 60)
        try:
            self._sqs.send_message(
                QueueUrl=self._queue_url,
                MessageBody=collection_id,
                MessageGroupId=collection_id,
                MessageDeduplicationId=f"{collection_id}-{window}",
            )
        except Exception:  # the write succeeded; the scheduled sweep catches up
            log.exception("could not queue maintenance of %s", collection_id)
