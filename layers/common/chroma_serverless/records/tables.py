"""The tables of a record store: one LanceDB table per collection, the handle each is read
and written through, and the one version check that starts every operation.

Tables never re-check their version on their own (each engine check is a LIST on S3, and one
search would make five); instead every operation starts with one explicit check (:meth:`latest`:
by the next version's manifest, ``versions.py``, the engine only once the version moved), so a
write acknowledged by any process is visible to the next operation in any other, and a warm
handle keeps its cached index and metadata.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import lancedb

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.records import arrow, layout
from chroma_serverless.records.engine import (
    Description,
    Descriptions,
    checkout_latest,
    engine_errors,
    retry_on_conflict,
)
from chroma_serverless.records.versions import Versions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import pyarrow as pa

    from chroma_serverless.types import Collection

SCHEMA_RETRIES = 10
DROP_RETRIES = 5
T = TypeVar("T")
Opened = tuple[Any, int]  # a table handle and the version its check found
# The versions pinned by :meth:`Tables.pinned` in the current thread or task, by collection.
_PINNED: ContextVar[dict[str, Opened | None] | None] = ContextVar("pinned", default=None)


@dataclass(frozen=True)
class Held:
    """An open handle, the version its last check found (writes move the handle past it),
    whether ``Versions`` can check it, and when (``time.monotonic()``) that version was last
    confirmed the newest."""

    table: Any
    version: int
    named: bool
    confirmed_at: float


class Tables:
    """The tables under ``uri`` (a directory or ``s3://bucket/prefix``). ``in_memory`` tells
    whether a version of a table is held in memory (its reads then overlap the check)."""

    def __init__(
        self,
        uri: str,
        storage_options: Mapping[str, str],
        retention_seconds: int,
        in_memory: Callable[[str, int], bool],
    ) -> None:
        self.storage_options = dict(storage_options)
        self.db = lancedb.connect(uri, storage_options=self.storage_options)
        self._held: dict[str, Held] = {}
        self._at: dict[str, Opened] = {}  # by collection: a handle held at one version (at())
        self._versions = Versions(uri, self.storage_options, retention_seconds)
        self._retention_s = retention_seconds
        self._described = Descriptions()
        self._in_memory = in_memory
        self._lock = threading.Lock()
        self._creating = threading.Lock()

    @property
    def files(self) -> Versions:
        """The tables' manifests, as files (``versions.py``)."""
        return self._versions

    def described(self, table: Any) -> Description:
        """The column names and indexes of ``table``'s current version."""
        return self._described.of(table)

    def open(self, collection_id: str) -> Any | None:
        """The collection's table at its latest version, or ``None`` if it has no records."""
        opened = self.latest(collection_id)
        return None if opened is None else opened[0]

    def latest(self, collection_id: str, moved: bool = False) -> Opened | None:
        """:meth:`_open` and the version it checked out: the one version check of the
        operation, by the next version's manifest (``versions.py``) unless already known
        ``moved``, else the engine's."""
        with self._lock:
            held = self._held.get(collection_id)
        if held is not None:
            if not moved and self._confirm(collection_id, held)():
                return held.table, held.version
            started = time.monotonic()
            try:
                version = checkout_latest(held.table)
            except Exception:  # dropped by another process: forget the handle
                with self._lock:
                    self._held.pop(collection_id, None)
            else:
                with self._lock:
                    self._held[collection_id] = Held(held.table, version, held.named, started)
                return held.table, version
        started = time.monotonic()
        try:
            table = self.db.open_table(collection_id)
        except ValueError:  # "Table ... was not found": no record was ever written
            return None
        version = int(table.version)
        fresh = Held(table, version, self._versions.named(collection_id, version), started)
        with self._lock:
            held = self._held.setdefault(collection_id, fresh)
        return held.table, held.version

    def latest_version(self, collection_id: str) -> int | None:
        """The table's latest version (checked), ``None`` if it has no records."""
        opened = self.latest(collection_id, moved=True)
        return None if opened is None else opened[1]

    def at(self, collection_id: str, version: int) -> Opened | None:
        """The collection's table at exactly ``version`` (the one its log's mark names), on a
        handle of its own that nothing ever moves (writes move the shared one): no request
        while the mark stays; ``None`` if the table is gone."""
        with self._lock:
            held = self._at.get(collection_id)
        if held is not None and held[1] == version:
            return held
        table = self.version(collection_id, version)
        if table is None:
            return None
        with self._lock:
            self._at[collection_id] = (table, version)
        return table, version

    def _confirm(self, collection_id: str, held: Held) -> Callable[[], bool]:
        """Start checking whether ``held``'s version is still the newest (``versions.py``);
        returns the wait for the answer (``False`` when that cannot tell), which remembers a
        confirmation."""
        started = time.monotonic()
        if not held.named:
            return lambda: False
        answer = self._versions.unchanged(collection_id, held.version, held.confirmed_at)

        def confirmed() -> bool:
            if not answer():
                return False
            with self._lock:
                if self._held.get(collection_id) is held:
                    self._held[collection_id] = Held(held.table, held.version, True, started)
            return True

        return confirmed

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Reads in the block (on this thread or task) each check a collection's version only
        the first time: later ones read the version that check found."""
        token = _PINNED.set({})
        try:
            yield
        finally:
            _PINNED.reset(token)

    def read(
        self, collection_id: str, read: Callable[[Opened | None], T], version: int | None = None
    ) -> T:
        """``read`` of ``version`` (``None``: the latest, :meth:`_read`), or, in a
        :meth:`pinned` block, of the version pinned."""
        pins = _PINNED.get()
        if pins is None:
            return self._read(collection_id, read, version)
        if collection_id in pins:
            return read(pins[collection_id])

        def pinning(opened: Opened | None) -> T:
            result = read(opened)
            pins[collection_id] = opened  # the version the result came from
            return result

        return self._read(collection_id, pinning, version)

    def pin(self, collection_id: str, version: int | None) -> None:
        """In a :meth:`pinned` block: reads of the collection read ``version`` (``None``: the
        latest, checked now)."""
        pins = _PINNED.get()
        assert pins is not None, "pin() needs a pinned() block"
        pins[collection_id] = (
            self.latest(collection_id) if version is None else self.at(collection_id, version)
        )

    def pinned_here(self, collection_id: str) -> bool:
        """Whether a :meth:`pinned` block already read this collection (no check needed)."""
        pins = _PINNED.get()
        return pins is not None and collection_id in pins

    def _read(
        self, collection_id: str, read: Callable[[Opened | None], T], version: int | None
    ) -> T:
        """``read`` of the collection's latest version. On S3, when the version held is in
        memory, its check (two HEADs at once, one round trip) runs beside ``read`` of that
        snapshot, which stands once the check confirms it: a warm read then takes the longer of
        the two, not their sum. Only when the version moved is the read done again, on the new
        one."""
        if version is not None:
            return read(self.at(collection_id, version))
        with self._lock:
            held = self._held.get(collection_id)
        if (
            held is None
            or not held.named
            or not self._versions.remote
            or not self._in_memory(collection_id, held.version)
        ):
            return read(self.latest(collection_id))
        confirmed = self._confirm(collection_id, held)
        try:
            result = read((held.table, held.version))
        except Exception:
            if confirmed():
                raise
        else:
            if confirmed():
                return result
        return read(self.latest(collection_id, moved=True))

    def writable(self, collection: Collection) -> Any:
        table = self.open(collection.id)
        if table is not None:
            return table
        if collection.dimension is None:
            raise InvalidArgumentError("Collection dimension is unknown; add embeddings first")
        with self._creating:  # one creation per process; other processes are handled below
            if self.open(collection.id) is None:
                self._create(collection.id, collection.dimension)
        opened = self.open(collection.id)
        assert opened is not None
        return opened

    def _create(self, collection_id: str, dimension: int) -> None:
        """Create the table of a collection's first records.

        Creation is not atomic across processes: a creator that found no table but commits
        after another process created it (and wrote into it) lands as an overwrite on top,
        wiping those writes (measured on S3: six writers of a new collection in three
        processes lost the first batches of some). Such a late creator sees a version above 1
        and puts back the rows of the version before its own; writers that committed after it
        kept theirs, and ids already present win.
        """
        try:
            table = self.db.create_table(collection_id, schema=arrow.base_schema(dimension))
        except ValueError as exc:  # another writer created it first
            if "already exists" not in str(exc):
                raise
            return
        created = int(table.version)
        table.set_unenforced_primary_key(layout.ID)  # type: ignore[attr-defined]
        if created > 1:
            self._put_back(collection_id, created - 1)

    @retry_on_conflict
    def _put_back(self, collection_id: str, version: int) -> None:
        """Re-insert the rows of ``version`` that the latest version lacks."""
        before = self.db.open_table(collection_id)
        before.checkout(version)
        rows = before.to_arrow()
        if rows.num_rows == 0:
            return
        table = self.open(collection_id)
        assert table is not None
        metadata = [f for f in rows.schema if layout.parse_metadata_column(f.name) is not None]
        self.ensure_columns(table, metadata)
        with engine_errors():
            table.merge_insert(layout.ID).when_not_matched_insert_all().execute(rows)

    def ensure_columns(self, table: Any, fields: Sequence[pa.Field]) -> pa.Schema:
        """Add missing metadata columns; concurrent schema changes are retried. Returns the
        schema that has them all: the handle is shared by every thread of the process, so a
        second read of ``table.schema`` is not guaranteed to be the version checked here."""
        for _ in range(SCHEMA_RETRIES):
            schema: pa.Schema = table.schema
            missing = [f for f in fields if f.name not in schema.names]
            if not missing:
                return schema
            try:
                table.add_columns(missing)
            except (RuntimeError, ValueError) as exc:
                message = str(exc)
                if "already exists" not in message and "conflict" not in message.lower():
                    raise
                table.checkout_latest()
        raise RuntimeError("could not add metadata columns after concurrent schema changes")

    def aged(self, collection_id: str) -> set[int] | None:
        """The table's versions past the retention window, but its newest (``versions.py``)."""
        return self._versions.aged(collection_id, self._retention_s)

    def version(self, collection_id: str, version: int | None) -> Any | None:
        """A handle of its own on one version of the table (``None``: the latest), so pinning
        it never moves the shared handle; ``None`` if the collection has no records."""
        try:
            table = self.db.open_table(collection_id)
        except ValueError:
            return None
        if version is not None:
            table.checkout(version)
        return table

    def drop(self, collection_id: str) -> bool:
        """Forget the collection's handle and remove its table; ``False`` if files remain after
        a few tries.

        A maintainer (here or in another process) may be writing index or compaction files into
        the table meanwhile: locally removing the directory then fails ("Directory not empty"),
        on S3 objects written after the prefix listing survive it. Retrying covers the first;
        whatever a maintainer writes later it removes itself once it sees the collection gone
        (``service/maintenance.py``), and the sweep removes anything else.
        """
        with self._lock:
            self._held.pop(collection_id, None)
            self._at.pop(collection_id, None)
            self._described.clear()
        for attempt in range(DROP_RETRIES):
            try:
                self.db.drop_table(collection_id)
            except ValueError as exc:
                if "was not found" in str(exc):  # never written, or already dropped
                    return True
            except (RuntimeError, OSError):
                pass
            else:
                return True
            time.sleep(random.uniform(0, 0.02 * 2**attempt))
        return False

    def drop_all(self) -> bool:
        """Remove every table; ``False`` if some files remain (see :meth:`drop`)."""
        with self._lock:
            self._held.clear()
            self._at.clear()
            self._described.clear()
        try:
            self.db.drop_all_tables()
        except (RuntimeError, OSError, ValueError):  # a maintainer writing: one table at a time
            return all([self.drop(collection_id) for collection_id in self.collection_ids()])
        return True

    def collection_ids(self) -> list[str]:
        ids: list[str] = []
        page_token = None
        while True:
            page = self.db.list_tables(page_token=page_token)
            ids.extend(page.tables)
            page_token = page.page_token
            if not page_token:
                return ids
