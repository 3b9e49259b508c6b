"""Snapshots by collection id, bounded by their total size in bytes (least recently used out
first)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chroma_serverless.records.memory.snapshot import Snapshot


class SnapshotCache:
    """Snapshots by collection id, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Snapshot] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, collection_id: str, version: int | None = None) -> Snapshot | None:
        """The collection's snapshot (of ``version``, when given)."""
        with self._lock:
            snapshot = self._entries.get(collection_id)
            if snapshot is None or (version is not None and snapshot.version != version):
                return None
            self._entries.move_to_end(collection_id)
            return snapshot

    def put(self, collection_id: str, snapshot: Snapshot) -> None:
        with self._lock:
            self._pop(collection_id)
            if snapshot.nbytes > self.max_bytes:
                return
            self._entries[collection_id] = snapshot
            self._bytes += snapshot.nbytes
            while self._bytes > self.max_bytes:
                self._pop(next(iter(self._entries)))

    def discard(self, collection_id: str) -> None:
        with self._lock:
            self._pop(collection_id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _pop(self, collection_id: str) -> None:
        snapshot = self._entries.pop(collection_id, None)
        if snapshot is not None:
            self._bytes -= snapshot.nbytes
