"""The embedded catalog: SQLite in the data directory, uniqueness by UNIQUE constraints."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

from chroma_serverless.catalog.sqlite.connection import Transaction, connect
from chroma_serverless.domain.lineage import Lineage
from chroma_serverless.errors import InvalidArgumentError, NotFoundError, UniqueConstraintError
from chroma_serverless.types import DEFAULT_DATABASE, DEFAULT_TENANT, Collection, Database, Tenant

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from chroma_serverless.types import Metadata

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS databases (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(name),
    name TEXT NOT NULL,
    UNIQUE (tenant, name)
);
CREATE TABLE IF NOT EXISTS collections (
    id TEXT PRIMARY KEY,
    database_id TEXT NOT NULL REFERENCES databases(id),
    name TEXT NOT NULL,
    metadata TEXT,
    configuration TEXT NOT NULL,
    dimension INTEGER,
    schema TEXT,
    UNIQUE (database_id, name)
);
-- One row per fork: the collection it was forked from and the root of its lineage. Rows
-- outlive the collections they name (see chroma_serverless.domain.lineage).
CREATE TABLE IF NOT EXISTS forks (
    id TEXT PRIMARY KEY,
    root TEXT NOT NULL,
    parent TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS forks_by_root ON forks (root);
"""

_COLLECTION_SELECT = """
SELECT c.id, c.name, d.tenant, d.name, c.metadata, c.configuration, c.dimension, c.schema
FROM collections c JOIN databases d ON d.id = c.database_id
"""


class SqliteCatalog:
    """:class:`~chroma_serverless.catalog.Catalog` in one SQLite file (or ``:memory:``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._conn, self._lock = connect(path, SCHEMA)
        self._by_id = _UnchangedCache(self._conn)
        with self._lock:
            self._add_schema_column()
        self._ensure_defaults()

    def _add_schema_column(self) -> None:
        """Catalog files written before collection schemas were kept lack the column; their
        collections get a schema derived from their configuration when read."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(collections)")}
        if "schema" not in columns:
            self._conn.execute("ALTER TABLE collections ADD COLUMN schema TEXT")

    def _transaction(self) -> Transaction:
        return Transaction(self._conn, self._lock)

    def _ensure_defaults(self) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO tenants VALUES (?)", (DEFAULT_TENANT,))
            db.execute(
                "INSERT OR IGNORE INTO databases VALUES (?, ?, ?)",
                (str(uuid.uuid4()), DEFAULT_TENANT, DEFAULT_DATABASE),
            )

    # ------------------------------------------------------------------ tenants

    def create_tenant(self, name: str) -> Tenant:
        with self._transaction() as db:
            try:
                db.execute("INSERT INTO tenants VALUES (?)", (name,))
            except sqlite3.IntegrityError as exc:
                raise UniqueConstraintError(f"Tenant [{name}] already exists") from exc
        return Tenant(name)

    def get_tenant(self, name: str) -> Tenant:
        with self._transaction() as db:
            row = db.execute("SELECT name FROM tenants WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"Tenant [{name}] not found")
        return Tenant(row[0])

    # ------------------------------------------------------------------ databases

    def create_database(self, tenant: str, name: str) -> Database:
        database = Database(str(uuid.uuid4()), name, tenant)
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone() is None:
                raise NotFoundError(f"Tenant [{tenant}] not found")
            try:
                db.execute("INSERT INTO databases VALUES (?, ?, ?)", (database.id, tenant, name))
            except sqlite3.IntegrityError as exc:
                raise UniqueConstraintError(f"Database [{name}] already exists") from exc
        return database

    def get_database(self, tenant: str, name: str) -> Database:
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, name, tenant FROM databases WHERE tenant = ? AND name = ?",
                (tenant, name),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Database [{name}] not found. Are you sure it exists?")
        return Database(*row)

    def list_databases(self, tenant: str, limit: int | None, offset: int) -> list[Database]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, name, tenant FROM databases WHERE tenant = ? ORDER BY name "
                "LIMIT ? OFFSET ?",
                (tenant, -1 if limit is None else limit, offset),
            ).fetchall()
        return [Database(*row) for row in rows]

    def delete_database(self, tenant: str, name: str) -> list[Collection]:
        with self._transaction() as db:
            database = self.get_database(tenant, name)
            collections = [
                _collection(row)
                for row in db.execute(
                    _COLLECTION_SELECT + "WHERE c.database_id = ?", (database.id,)
                ).fetchall()
            ]
            db.execute("DELETE FROM collections WHERE database_id = ?", (database.id,))
            db.execute("DELETE FROM databases WHERE id = ?", (database.id,))
        return collections

    # ------------------------------------------------------------------ collections

    def create_collection(
        self, collection: Collection, get_or_create: bool
    ) -> tuple[Collection, bool]:
        with self._transaction() as db:
            try:
                self._insert_collection(db, collection)
            except UniqueConstraintError:
                if not get_or_create:
                    raise
                existing = self.get_collection(
                    collection.tenant, collection.database, collection.name
                )
                return existing, False
        return collection, True

    def _insert_collection(self, db: sqlite3.Connection, collection: Collection) -> None:
        row = db.execute(
            "SELECT id FROM databases WHERE tenant = ? AND name = ?",
            (collection.tenant, collection.database),
        ).fetchone()
        if row is None:
            raise InvalidArgumentError(f"Database [{collection.database}] does not exist")
        try:
            db.execute(
                "INSERT INTO collections (id, database_id, name, metadata, configuration, "
                "dimension, schema) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    collection.id,
                    row[0],
                    collection.name,
                    _dump(collection.metadata),
                    json.dumps(collection.configuration),
                    collection.dimension,
                    None if collection.schema is None else json.dumps(collection.schema),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise UniqueConstraintError(f"Collection [{collection.name}] already exists") from exc

    def get_collection(self, tenant: str, database: str, name: str) -> Collection:
        with self._transaction() as db:
            row = db.execute(
                _COLLECTION_SELECT + "WHERE d.tenant = ? AND d.name = ? AND c.name = ?",
                (tenant, database, name),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Collection [{name}] does not exist")
        return _collection(row)

    def get_collection_by_id(self, collection_id: str) -> Collection:
        with self._lock:
            if self._conn.in_transaction:  # within a write, which may yet roll back
                return self._read_collection_by_id(collection_id)
            return self._by_id.get(collection_id, self._read_collection_by_id)

    def _read_collection_by_id(self, collection_id: str) -> Collection:
        with self._transaction() as db:
            row = db.execute(_COLLECTION_SELECT + "WHERE c.id = ?", (collection_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"Collection [{collection_id}] does not exist.")
        return _collection(row)

    def list_collections(
        self, tenant: str, database: str, limit: int | None, offset: int
    ) -> list[Collection]:
        with self._transaction() as db:
            rows = db.execute(
                _COLLECTION_SELECT
                + "WHERE d.tenant = ? AND d.name = ? ORDER BY c.name LIMIT ? OFFSET ?",
                (tenant, database, -1 if limit is None else limit, offset),
            ).fetchall()
        return [_collection(row) for row in rows]

    def count_collections(self, tenant: str, database: str) -> int:
        with self._transaction() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM collections c JOIN databases d ON d.id = c.database_id "
                "WHERE d.tenant = ? AND d.name = ?",
                (tenant, database),
            ).fetchone()
        return int(row[0])

    def all_collections(self) -> list[Collection]:
        with self._transaction() as db:
            rows = db.execute(_COLLECTION_SELECT + "ORDER BY c.id").fetchall()
        return [_collection(row) for row in rows]

    def update_collection(
        self,
        collection_id: str,
        name: str | None,
        metadata: Metadata | None,
        configuration: dict[str, Any] | None,
        schema: dict[str, Any] | None = None,
    ) -> Collection:
        with self._transaction() as db:
            updated = self.get_collection_by_id(collection_id).updated(
                name, metadata, configuration, schema
            )
            try:
                db.execute(
                    "UPDATE collections SET name = ?, metadata = ?, configuration = ?, schema = ? "
                    "WHERE id = ?",
                    (
                        updated.name,
                        _dump(updated.metadata),
                        json.dumps(updated.configuration),
                        None if updated.schema is None else json.dumps(updated.schema),
                        collection_id,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise UniqueConstraintError(f"Collection [{name}] already exists") from exc
            return self.get_collection_by_id(collection_id)

    def delete_collection(self, tenant: str, database: str, name: str) -> Collection:
        with self._transaction() as db:
            collection = self.get_collection(tenant, database, name)
            db.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
        return collection

    def set_dimension(self, collection_id: str, dimension: int) -> int:
        with self._transaction() as db:
            db.execute(
                "UPDATE collections SET dimension = ? WHERE id = ? AND dimension IS NULL",
                (dimension, collection_id),
            )
            row = db.execute(
                "SELECT dimension FROM collections WHERE id = ?", (collection_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Collection [{collection_id}] does not exist.")
        return int(row[0])

    # ------------------------------------------------------------------ lineage

    def fork_collection(self, fork: Collection, source_id: str) -> Collection:
        with self._transaction() as db:
            self.get_collection_by_id(source_id)
            self._insert_collection(db, fork)
            row = db.execute("SELECT root FROM forks WHERE id = ?", (source_id,)).fetchone()
            root = source_id if row is None else row[0]
            db.execute("INSERT INTO forks VALUES (?, ?, ?)", (fork.id, root, source_id))
        return fork

    def lineage(self, collection_id: str) -> Lineage | None:
        with self._transaction() as db:
            row = db.execute("SELECT root FROM forks WHERE id = ?", (collection_id,)).fetchone()
            return self._lineage(db, collection_id if row is None else row[0])

    def lineages(self) -> list[Lineage]:
        with self._transaction() as db:
            roots = db.execute("SELECT DISTINCT root FROM forks ORDER BY root").fetchall()
            found = [self._lineage(db, root) for (root,) in roots]
        return [lineage for lineage in found if lineage is not None]

    def _lineage(self, db: sqlite3.Connection, root: str) -> Lineage | None:
        parents = dict(db.execute("SELECT id, parent FROM forks WHERE root = ?", (root,)))
        if not parents:
            return None
        live = db.execute(
            "SELECT id FROM collections WHERE id = ? OR id IN "
            "(SELECT id FROM forks WHERE root = ?)",
            (root, root),
        ).fetchall()
        return Lineage(root, parents, frozenset(row[0] for row in live))

    def forget_lineage(self, root_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM forks WHERE root = ?", (root_id,))

    def reset(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM collections")
            db.execute("DELETE FROM forks")
            db.execute("DELETE FROM databases")
            db.execute("DELETE FROM tenants")
        self._ensure_defaults()


class _UnchangedCache:
    """Collections read by id (every record request reads one), kept while the database is
    unchanged: ``PRAGMA data_version`` moves when another connection, of this process or
    another, commits; ``total_changes`` when this one writes. Checking both costs far less than
    the query and the JSON decoding of a configuration and schema. The collections are shared
    between requests: nothing may change their dictionaries in place."""

    LIMIT = 1024  # collections; past it the cache starts over

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._version: tuple[int, int] | None = None
        self._entries: dict[str, Collection] = {}

    def get(self, collection_id: str, read: Callable[[str], Collection]) -> Collection:
        """Call with the catalog's lock held, outside a transaction."""
        version = (
            self._conn.execute("PRAGMA data_version").fetchone()[0],
            self._conn.total_changes,
        )
        if version != self._version or len(self._entries) >= self.LIMIT:
            self._entries.clear()
            self._version = version
        found = self._entries.get(collection_id)
        if found is None:
            found = self._entries[collection_id] = read(collection_id)
        return found


def _dump(metadata: Metadata | None) -> str | None:
    return None if metadata is None else json.dumps(metadata)


def _collection(row: tuple[Any, ...]) -> Collection:
    collection_id, name, tenant, database, metadata, configuration, dimension, schema = row
    return Collection(
        id=collection_id,
        name=name,
        tenant=tenant,
        database=database,
        metadata=None if metadata is None else json.loads(metadata),
        configuration=json.loads(configuration),
        dimension=dimension,
        schema=None if schema is None else json.loads(schema),
    )
