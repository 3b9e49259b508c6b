"""``import``: files into a collection, resumable and idempotent.

Records are upserted by id in chunks; after each committed chunk the checkpoint records the next
row, so the same command run again after a crash continues there (a chunk written but not yet
recorded is written again, which an upsert makes harmless). The next chunk is read while the
current one is written.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from chroma_serverless.transfer.checkpoint import Checkpoint, checkpoint
from chroma_serverless.transfer.endpoints import find
from chroma_serverless.transfer.progress import progress
from chroma_serverless.transfer.sources import read, rows_in

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from pathlib import Path

    from chroma_serverless.transfer.columns import ColumnMap
    from chroma_serverless.transfer.endpoints import Endpoint
    from chroma_serverless.transfer.files import SourceFile
    from chroma_serverless.transfer.sources import Chunk
    from chroma_serverless.types import Collection

PREFETCH = 1  # chunks read ahead of the one being written

log = logging.getLogger("chroma_serverless.transfer")


@dataclass(frozen=True)
class ImportJob:
    files: list[SourceFile]
    collection: str
    columns: ColumnMap
    like: Collection | None = None  # how to create the collection if it does not exist
    chunk_rows: int = 20_000

    def key(self, target: str) -> dict[str, Any]:
        """What the import is, for its checkpoint: files, target and mapping."""
        return {
            "files": [f.location.uri for f in self.files],
            "target": target,
            "collection": self.collection,
            "columns": asdict(self.columns),
        }


@dataclass
class ImportReport:
    collection: str
    collection_id: str
    records: int  # rows of the files imported, over every run of this import
    imported: int = 0  # ... of them by this run
    resumed_at: int = 0  # rows already imported when this run began
    seconds: float = 0.0
    records_per_second: float = 0.0
    already_done: bool = False
    checkpoint: str = ""
    maintenance: dict[str, Any] | None = field(default=None)


def import_files(
    job: ImportJob, endpoint: Endpoint, state: Path, restart: bool = False, maintain: bool = True
) -> ImportReport:
    """Import ``job`` into ``endpoint``, resuming from its checkpoint under ``state``.

    The files are opened, and their first chunk read and checked, before the collection is
    created, so a file that cannot be imported leaves nothing behind. A later chunk that fails
    into a collection this import created (in this run or an earlier one of the same
    checkpoint) deletes that collection and the checkpoint. Into a collection that existed
    before, the chunks already written stay, and the checkpoint records them: the same command
    resumes after them (``--restart`` writes them again, harmlessly, as upserts)."""
    sources = [f.fingerprint for f in job.files]
    point = checkpoint(state, job.key(endpoint.identity), sources, restart)
    existing = find(endpoint, job.collection)
    if point.collection_id is not None and (existing is None or existing.id != point.collection_id):
        point = checkpoint(state, job.key(endpoint.identity), sources, restart=True)
    if point.done and existing is not None:
        report = ImportReport(existing.name, existing.id, point.records, checkpoint=str(point.path))
        report.already_done = True
        return report
    totals = [rows_in(f) for f in job.files]
    total = None if None in totals else sum(t for t in totals if t is not None)
    chunk_rows = min(job.chunk_rows, endpoint.batch_limit or job.chunk_rows)
    with contextlib.closing(_prefetched(_chunks(job, point, chunk_rows))) as chunks:
        first = next(chunks, None)  # the files open and their first rows check out
        collection, created = endpoint.create_collection(job.collection, job.like)
        ours = created or point.created
        report = ImportReport(collection.name, collection.id, point.records)
        report.checkpoint = str(point.path)
        report.resumed_at = point.records
        bar = progress(f"import {collection.name}", total, point.records)
        started = time.monotonic()
        try:
            for file, start, chunk in itertools.chain([first] if first else [], chunks):
                collection = endpoint.upsert(collection, chunk.batch)
                point.advance(collection.id, file, start + chunk.rows, chunk.rows, ours)
                bar.update(chunk.rows)
        except BaseException:
            if ours:
                _undo(endpoint, collection, point)
            raise
        finally:
            bar.close()
    point.finish(collection.id, ours)
    report.seconds = time.monotonic() - started
    report.records = point.records
    report.imported = point.records - report.resumed_at
    report.records_per_second = report.imported / max(report.seconds, 1e-9)
    if maintain:
        try:
            report.maintenance = endpoint.imported(collection)
        except Exception as exc:  # the records are in; the next maintenance run retries
            log.exception("maintenance after importing %s failed", collection.name)
            report.maintenance = {"failed": f"{type(exc).__name__}: {exc}"}
    return report


def _undo(endpoint: Endpoint, collection: Collection, point: Checkpoint) -> None:
    """Delete the collection this import created, and its checkpoint: no trace of it stays."""
    try:
        endpoint.drop(collection)
        point.discard()
    except Exception:  # the error that stopped the import is the one to report
        log.exception("could not delete %s after its import failed", collection.name)


def _chunks(job: ImportJob, point: Checkpoint, rows: int) -> Iterator[tuple[int, int, Chunk]]:
    """(file index, first row, chunk) from the checkpoint's position on."""
    for file in range(point.file, len(job.files)):
        start = point.row if file == point.file else 0
        for chunk in read(job.files[file], job.columns, start, rows):
            yield file, start, chunk
            start += chunk.rows


def _prefetched(chunks: Iterator[Any]) -> Generator[Any, None, None]:
    """``chunks``, read and converted on a thread of their own while the caller writes."""
    ahead: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in chunks:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put(("error", exc))

    reader = threading.Thread(target=produce, name="import-reader", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = ahead.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        reader.join(timeout=5)
