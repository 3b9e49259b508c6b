"""LanceDB as this store uses it: distance names, one read helper, what a table version looks
like (remembered per version), which engine errors are the caller's, and retries of writes."""

from __future__ import annotations

import contextlib
import functools
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.records import layout

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pyarrow as pa

    from chroma_serverless.types import Space

LANCE_DISTANCE: dict[Space, str] = {"l2": "l2", "cosine": "cosine", "ip": "dot"}
REGEX_ERRORS = ("regex parse error", "Regular expression did not compile")
# Where in its Rust source the engine raised an error: ", /root/.cargo/.../filtered_read.rs:1639:33"
SOURCE_LOCATION = re.compile(r",?\s*\S+\.rs:\d+:\d+")
WRITE_RETRIES = 5
# A write built against a schema another writer has since changed: pyarrow's lookup of a column
# the handle's schema lacks, and LanceDB refusing data with a column its table version lacks.
STALE_SCHEMA = ("does not exist in schema", "not found in target schema")
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Description:
    """A table version's column names and indexes."""

    names: list[str]
    indices: list[Any]

    @property
    def vector_index(self) -> Any | None:
        """The ANN index on ``embedding``, or ``None``."""
        return next((i for i in self.indices if i.columns == [layout.EMBEDDING]), None)


DESCRIBED_HANDLES = 256  # handles whose description is kept


class Descriptions:
    """:class:`Description` of each open handle's current version, read once per version
    (listing indexes reads storage)."""

    def __init__(self) -> None:
        # id(table) -> (table, version, description); holding the table keeps its id from
        # being reused by another handle while the entry lives.
        self._entries: dict[int, tuple[Any, int, Description]] = {}
        self._lock = threading.Lock()

    def of(self, table: Any) -> Description:
        version = table.version
        with self._lock:
            cached = self._entries.get(id(table))
        if cached is not None and cached[0] is table and cached[1] == version:
            return cached[2]
        description = Description(list(table.schema.names), list(table.list_indices()))
        with self._lock:
            self._entries.pop(id(table), None)
            self._entries[id(table)] = (table, version, description)
            while len(self._entries) > DESCRIBED_HANDLES:  # the least recently described
                del self._entries[next(iter(self._entries))]
        return description

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def checkout_latest(table: Any) -> int:
    """Move ``table`` to its latest version (the version check: a LIST on S3) and return that
    version, in one trip to LanceDB's event loop thread instead of two (each costs a GIL hand-off,
    about 0.2 ms under load)."""
    from lancedb.background_loop import LOOP

    loop: Any = LOOP  # untyped

    async def latest() -> int:
        await table._table.checkout_latest()
        return int(await table._table.version())

    return int(loop.run(latest()))


def select(table: Any, predicate: str | None, columns: list[str]) -> pa.Table:
    """Every row matching ``predicate`` (all rows for ``None``), in storage order."""
    query = table.search().select(columns).limit(None)  # a plain search defaults to 10
    if predicate is not None:
        query = query.where(predicate)
    with engine_errors():
        return query.to_arrow()


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """A bad regex is the caller's error (LanceDB reports it while planning or while running);
    everything else stays an internal error."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:
        message = str(exc)
        for marker in REGEX_ERRORS:
            if marker in message:
                detail = " ".join(message[message.index(marker) :].splitlines()[:4])
                detail = SOURCE_LOCATION.sub("", detail)  # the engine's build paths
                raise InvalidArgumentError(f"Invalid regex in where document: {detail}") from exc
        raise


def retry_on_conflict(write: Callable[P, R]) -> Callable[P, R]:
    """Re-run a whole write (re-reading what it merges) when a concurrent commit it cannot be
    rebased on (e.g. a compaction rewriting the same fragments) wins, or when the table's schema
    changed under it (another process or thread added a metadata column between this write
    reading the schema and committing). Each run starts at the latest version (``_open``), so
    the retry sees the new schema. Writes are idempotent."""

    @functools.wraps(write)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(WRITE_RETRIES):
            try:
                return write(*args, **kwargs)
            except (RuntimeError, OSError, ValueError, KeyError) as exc:
                if not _retryable(exc) or attempt == WRITE_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")

    return retrying


def _retryable(exc: Exception) -> bool:
    message = str(exc).lower()
    return "conflict" in message or any(marker in message for marker in STALE_SCHEMA)
