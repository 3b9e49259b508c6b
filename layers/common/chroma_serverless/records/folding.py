"""The write log in front of each table: writes append to it, reads first make the table hold
every acknowledged write (fold the tail, or wait for the folder that is doing it), and only the
holder of the collection's lease writes the table.

A fold reads the tail ``folded + 1 .. head``, commits its outcome (``Writes.fold``), moves the
mark to (``head``, the new version) and trims the log. Readers read the version the mark names,
never the table's latest, so a folder that dies between its commits is never seen half done;
the next folder starts again from the mark, and since a fold's outcome is absolute, folding
again over what the dead one committed gives the same table.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import TYPE_CHECKING

from chroma_serverless.errors import BusyError, LogTrimmedError
from chroma_serverless.records import entries as log_entries
from chroma_serverless.types import LogState

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chroma_serverless.ports import Log
    from chroma_serverless.records.tables import Tables
    from chroma_serverless.records.writes import Writes
    from chroma_serverless.types import Collection

log = logging.getLogger("chroma_serverless.folding")

LEASE_SECONDS = 10.0  # a folder that dies holding the lease blocks its collection this long
RENEW_SECONDS = 3.0  # a live holder renews it this often, however long its work takes
WAIT_SECONDS = 25.0  # how long a reader waits for another folder before answering 503
FOLD_ENTRIES = 2_000  # entries per fold commit (a fold past them continues in another)
LOST = "Collection's write log moved under its folder (its lease expired); retry"


# The state reads :meth:`Folder.expect` started in the current request, by collection.
_EXPECTED: ContextVar[dict[str, Future[LogState]] | None] = ContextVar("expected", default=None)
_STATES = ThreadPoolExecutor(8, thread_name_prefix="log-state")


class Folder:
    def __init__(self, log: Log, tables: Tables, writes: Writes) -> None:
        self._log = log
        self._tables = tables
        self._writes = writes
        self._process = f"{os.uname().nodename}:{os.getpid()}"

    def append(self, collection: Collection, entry: log_entries.Entry) -> int:
        return self._log.append(collection.id, log_entries.encode(entry))

    def expect(self, collection_id: str) -> None:
        """Start reading the collection's state for a read later in this request (see
        :meth:`state`): it overlaps the catalog read that comes first."""
        expected = _EXPECTED.get()
        if expected is None:
            expected = {}
            _EXPECTED.set(expected)
        expected[collection_id] = _STATES.submit(self._log.state, collection_id)

    def state(self, collection: Collection) -> LogState:
        """The collection's state, read after this request began (by :meth:`expect`, or now)."""
        expected = _EXPECTED.get()
        started = None if expected is None else expected.pop(collection.id, None)
        return self._log.state(collection.id) if started is None else started.result()

    def entries(self, collection: Collection, after: int, upto: int) -> list[log_entries.Entry]:
        """The entries ``after + 1 .. upto`` (abandoned slots left out)."""
        return [
            log_entries.decode(data)
            for data in self._log.entries(collection.id, after, upto)
            if data is not None
        ]

    def fresh(self, collection: Collection) -> LogState:
        """The state to read: its version holds every write acknowledged before this call."""
        state = self.state(collection)
        if state.tail == 0:
            return state
        with self.exclusive(collection, until=state.head) as folded:
            return folded

    @contextlib.contextmanager
    def exclusive(self, collection: Collection, until: int | None = None) -> Iterator[LogState]:
        """Hold the collection's lease with its tail folded, for a write of the table itself
        (maintenance, a delete by filter, an import, a restore); the mark then names the
        version that write left. With ``until``, a caller that only needs the entries up to
        ``until`` folded is content when another folder has done so meanwhile, without
        taking the lease."""
        holder = f"{self._process}:{uuid.uuid4().hex}"
        deadline = time.monotonic() + WAIT_SECONDS
        pause = 0.005
        while not self._log.lease(collection.id, holder, LEASE_SECONDS):
            if until is not None:
                state = self._log.state(collection.id)
                if state.folded >= until:
                    yield state
                    return
            if time.monotonic() > deadline:
                raise BusyError(
                    "Collection is busy: its writes are being folded into its table; retry"
                )
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.1)
        renewing = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(collection.id, holder, renewing), daemon=True
        )
        renewer.start()
        try:
            state = self._fold(collection)
            version = state.version
            yield state
            latest = self._tables.latest_version(collection.id)
            if latest is not None and latest != version:
                self._moved(collection, state, state.folded, latest)
        finally:
            renewing.set()
            renewer.join()
            self._log.release(collection.id, holder)

    def _renew(self, collection_id: str, holder: str, done: threading.Event) -> None:
        """Keep the lease while its holder works (an index build can take minutes); a holder
        that stalls past it loses it, and then cannot move the mark."""
        while not done.wait(RENEW_SECONDS):
            try:
                if not self._log.lease(collection_id, holder, LEASE_SECONDS):
                    return
            except Exception:  # the store unreachable: the holder finds out at its mark
                log.warning("could not renew the lease of %s", collection_id, exc_info=True)

    def _fold(self, collection: Collection) -> LogState:
        """Fold the tail as it is now (the lease is held): entries appended meanwhile are left
        for the next fold, or a steady writer would keep this one going forever. Returns the
        state after."""
        state = self._log.state(collection.id)
        head = state.head
        while state.folded < head:
            upto = min(head, state.folded + FOLD_ENTRIES)
            try:
                written = self.entries(collection, state.folded, upto)
            except LogTrimmedError as exc:  # another folder took over: the lease ran out
                raise BusyError(LOST) from exc
            version = (
                self._writes.fold(collection, state.version, written)
                if written
                else self._tables.latest_version(collection.id)
            )
            state = self._moved(collection, state, upto, version)
            self._log.trim(collection.id, upto)
        return state

    def _moved(
        self, collection: Collection, state: LogState, folded: int, version: int | None
    ) -> LogState:
        if version is None:  # no table: the entries folded touched nothing that exists
            version = state.version
        if not self._log.mark(collection.id, state, folded, version):
            raise BusyError(LOST)
        return LogState(state.head, folded, version)
