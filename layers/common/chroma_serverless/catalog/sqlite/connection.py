"""One SQLite file shared by the embedded catalog and credentials: a connection per store,
serialised by a lock, one ``BEGIN IMMEDIATE`` transaction per outer block."""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def connect(path: str | Path, schema: str) -> tuple[sqlite3.Connection, threading.RLock]:
    """A connection to ``path`` (WAL unless ``:memory:``) with ``schema``'s tables created."""
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(schema)
    return conn, threading.RLock()


class Transaction:
    """Serialises access to the shared connection; one IMMEDIATE transaction per outer block."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self._conn = conn
        self._lock = lock
        self._outer = False

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        self._outer = not self._conn.in_transaction
        if self._outer:
            self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if self._outer:
                self._conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
