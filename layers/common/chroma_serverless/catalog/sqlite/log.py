"""The embedded write log: :class:`~chroma_serverless.ports.Log` in a SQLite file of the data
directory. An append is one transaction (the number and the entry together), so the embedded
log never has gaps; the lease is a row, so processes sharing the directory take turns."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chroma_serverless.catalog.sqlite.connection import Transaction, connect
from chroma_serverless.errors import LogTrimmedError
from chroma_serverless.types import LogState

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS log_state (
    collection_id TEXT PRIMARY KEY,
    head INTEGER NOT NULL DEFAULT 0,
    folded INTEGER NOT NULL DEFAULT 0,
    version INTEGER,
    holder TEXT,
    held_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS log_entries (
    collection_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entry BLOB NOT NULL,
    PRIMARY KEY (collection_id, seq)
);
"""


class SqliteLog:
    """:class:`~chroma_serverless.ports.Log` in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._conn, self._lock = connect(path, SCHEMA)

    def _transaction(self) -> Transaction:
        return Transaction(self._conn, self._lock)

    def state(self, collection_id: str) -> LogState:
        with self._transaction() as db:
            row = db.execute(
                "SELECT head, folded, version FROM log_state WHERE collection_id = ?",
                (collection_id,),
            ).fetchone()
        return LogState() if row is None else LogState(*row)

    def append(self, collection_id: str, entry: bytes) -> int:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO log_state (collection_id) VALUES (?)", (collection_id,)
            )
            (seq,) = db.execute(
                "UPDATE log_state SET head = head + 1 WHERE collection_id = ? RETURNING head",
                (collection_id,),
            ).fetchone()
            db.execute("INSERT INTO log_entries VALUES (?, ?, ?)", (collection_id, seq, entry))
        return int(seq)

    def entries(self, collection_id: str, after: int, upto: int) -> list[bytes | None]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, entry FROM log_entries WHERE collection_id = ? AND seq > ? "
                "AND seq <= ? ORDER BY seq",
                (collection_id, after, upto),
            ).fetchall()
            if len(rows) < upto - after and after < self._folded(db, collection_id):
                raise LogTrimmedError(f"entries of {collection_id} after {after} were trimmed")
        found = {int(seq): bytes(entry) for seq, entry in rows}
        return [found.get(seq) for seq in range(after + 1, upto + 1)]

    @staticmethod
    def _folded(db: sqlite3.Connection, collection_id: str) -> int:
        row = db.execute(
            "SELECT folded FROM log_state WHERE collection_id = ?", (collection_id,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def mark(
        self, collection_id: str, expected: LogState, folded: int, version: int | None
    ) -> bool:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO log_state (collection_id) VALUES (?)", (collection_id,)
            )
            moved = db.execute(
                "UPDATE log_state SET folded = ?, version = ? WHERE collection_id = ? "
                "AND folded = ? AND version IS ? AND head >= ?",
                (folded, version, collection_id, expected.folded, expected.version, folded),
            ).rowcount
        return bool(moved)

    def trim(self, collection_id: str, upto: int) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM log_entries WHERE collection_id = ? AND seq <= ?",
                (collection_id, upto),
            )

    def lease(self, collection_id: str, holder: str, seconds: float) -> bool:
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO log_state (collection_id) VALUES (?)", (collection_id,)
            )
            taken = db.execute(
                "UPDATE log_state SET holder = ?, held_until = ? WHERE collection_id = ? "
                "AND (holder IS NULL OR holder = ? OR held_until < ?)",
                (holder, now + seconds, collection_id, holder, now),
            ).rowcount
        return bool(taken)

    def release(self, collection_id: str, holder: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE log_state SET holder = NULL, held_until = 0 "
                "WHERE collection_id = ? AND holder = ?",
                (collection_id, holder),
            )

    def drop(self, collection_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM log_entries WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM log_state WHERE collection_id = ?", (collection_id,))

    def reset(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM log_entries")
            db.execute("DELETE FROM log_state")
