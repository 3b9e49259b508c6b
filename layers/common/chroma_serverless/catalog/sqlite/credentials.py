"""The embedded credentials: API tokens and Basic users in the catalog's SQLite file."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from chroma_serverless.catalog.sqlite.connection import Transaction, connect
from chroma_serverless.errors import NotFoundError, UniqueConstraintError
from chroma_serverless.types import BasicCredential, Principal, Token

if TYPE_CHECKING:
    from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    databases TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS basic_credentials (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    tenant TEXT NOT NULL,
    databases TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""


class SqliteCredentials:
    """:class:`~chroma_serverless.ports.Credentials` in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._conn, self._lock = connect(path, SCHEMA)

    def _transaction(self) -> Transaction:
        return Transaction(self._conn, self._lock)

    def create_token(self, token: Token) -> None:
        principal = token.principal
        with self._transaction() as db:
            try:
                db.execute(
                    "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        token.hash,
                        token.id,
                        principal.user_id,
                        principal.tenant,
                        json.dumps(principal.databases),
                        principal.role,
                        token.created_at,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise UniqueConstraintError(f"Token [{token.id}] already exists") from exc

    def get_token(self, token_hash: str) -> Token | None:
        with self._transaction() as db:
            row = db.execute(_TOKEN_SELECT + "WHERE hash = ?", (token_hash,)).fetchone()
        return None if row is None else _token(row)

    def list_tokens(self) -> list[Token]:
        with self._transaction() as db:
            rows = db.execute(_TOKEN_SELECT + "ORDER BY user_id, created_at").fetchall()
        return [_token(row) for row in rows]

    def revoke_token(self, token_id: str) -> Token:
        with self._transaction() as db:
            row = db.execute(_TOKEN_SELECT + "WHERE id = ?", (token_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"Token [{token_id}] does not exist")
            db.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
        return _token(row)

    # ------------------------------------------------------------------ basic credentials

    def create_basic_credential(self, credential: BasicCredential) -> None:
        principal = credential.principal
        with self._transaction() as db:
            try:
                db.execute(
                    "INSERT INTO basic_credentials VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        credential.username,
                        credential.password_hash,
                        principal.tenant,
                        json.dumps(principal.databases),
                        principal.role,
                        credential.created_at,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise UniqueConstraintError(f"User [{credential.username}] already exists") from exc

    def get_basic_credential(self, username: str) -> BasicCredential | None:
        with self._transaction() as db:
            row = db.execute(_BASIC_SELECT + "WHERE username = ?", (username,)).fetchone()
        return None if row is None else _basic_credential(row)

    def list_basic_credentials(self) -> list[BasicCredential]:
        with self._transaction() as db:
            rows = db.execute(_BASIC_SELECT + "ORDER BY username").fetchall()
        return [_basic_credential(row) for row in rows]

    def revoke_basic_credential(self, username: str) -> BasicCredential:
        with self._transaction() as db:
            row = db.execute(_BASIC_SELECT + "WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise NotFoundError(f"User [{username}] does not exist")
            db.execute("DELETE FROM basic_credentials WHERE username = ?", (username,))
        return _basic_credential(row)


_TOKEN_SELECT = "SELECT hash, id, user_id, tenant, databases, role, created_at FROM tokens "


def _token(row: tuple[Any, ...]) -> Token:
    token_hash, token_id, user_id, tenant, databases, role, created_at = row
    principal = Principal(user_id, tenant, tuple(json.loads(databases)), role)
    return Token(token_id, token_hash, principal, created_at)


_BASIC_SELECT = (
    "SELECT username, password_hash, tenant, databases, role, created_at FROM basic_credentials "
)


def _basic_credential(row: tuple[Any, ...]) -> BasicCredential:
    username, password_hash, tenant, databases, role, created_at = row
    principal = Principal(username, tenant, tuple(json.loads(databases)), role)
    return BasicCredential(username, password_hash, principal, created_at)
