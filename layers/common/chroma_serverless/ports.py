"""The seams: what the use cases need of storage, as protocols (the ports).

``Catalog`` and ``Credentials`` are the control plane (SQLite in the data directory, or one
DynamoDB table: ``catalog/``); ``RecordStore`` is the data plane (LanceDB on a local directory
or S3: ``records/``); ``Maintainer`` starts the work that follows writes (a thread in the
server, or the AWS maintenance queue: ``service/maintenance.py``). Every implementation of a
port passes one contract suite (``tests/contract/``).

The catalog enforces its uniqueness rules (tenant name, database name per tenant, collection
name per database) itself, never by a read-then-write in the caller, so concurrent creates
cannot both win. It also keeps fork lineage (:mod:`chroma_serverless.domain.lineage`): which
collection each fork was forked from, recorded in the same atomic write that creates the fork,
and kept after deletions so the storage forks share is released only when nothing needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

    from chroma_serverless.domain.columns import ColumnBatch
    from chroma_serverless.domain.lineage import Lineage
    from chroma_serverless.types import (
        BasicCredential,
        Collection,
        Database,
        DeleteRequest,
        Filter,
        GetRequest,
        GetResult,
        LogState,
        Metadata,
        QueryRequest,
        QueryResult,
        RecordBatch,
        RestorePoint,
        SparseVector,
        Tenant,
        Token,
    )

SCAN_ROWS = 10_000  # records per batch of a scan (exports)


class Catalog(Protocol):
    def create_tenant(self, name: str) -> Tenant:
        """Raises UniqueConstraintError if it exists."""

    def get_tenant(self, name: str) -> Tenant:
        """Raises NotFoundError."""

    def create_database(self, tenant: str, name: str) -> Database:
        """Raises NotFoundError for a missing tenant, UniqueConstraintError if it exists."""

    def get_database(self, tenant: str, name: str) -> Database:
        """Raises NotFoundError."""

    def list_databases(self, tenant: str, limit: int | None, offset: int) -> list[Database]:
        """Databases of a tenant ordered by name."""

    def delete_database(self, tenant: str, name: str) -> list[Collection]:
        """Remove a database and its collections; returns the removed collections."""

    def create_collection(
        self, collection: Collection, get_or_create: bool
    ) -> tuple[Collection, bool]:
        """Insert ``collection``; returns (stored collection, created).

        If the name is taken: with ``get_or_create`` the stored one is returned unchanged,
        otherwise UniqueConstraintError. A missing database is an InvalidArgumentError.
        """

    def get_collection(self, tenant: str, database: str, name: str) -> Collection:
        """Raises NotFoundError."""

    def get_collection_by_id(self, collection_id: str) -> Collection:
        """Raises NotFoundError."""

    def list_collections(
        self, tenant: str, database: str, limit: int | None, offset: int
    ) -> list[Collection]:
        """Collections of a database ordered by name; empty for a missing database."""

    def count_collections(self, tenant: str, database: str) -> int:
        """0 for a missing database."""

    def all_collections(self) -> list[Collection]:
        """Every collection of every tenant (for maintenance sweeps)."""

    def update_collection(
        self,
        collection_id: str,
        name: str | None,
        metadata: Metadata | None,
        configuration: dict[str, Any] | None,
        schema: dict[str, Any] | None = None,
    ) -> Collection:
        """Rename and/or replace metadata, configuration and schema (``None`` keeps the
        current value).

        Raises NotFoundError, or UniqueConstraintError if the new name is taken.
        """

    def delete_collection(self, tenant: str, database: str, name: str) -> Collection:
        """Raises NotFoundError; returns the removed collection."""

    def set_dimension(self, collection_id: str, dimension: int) -> int:
        """Fix the dimension if it is unset; returns the dimension in force afterwards."""

    def fork_collection(self, fork: Collection, source_id: str) -> Collection:
        """Insert ``fork`` (in its source's database) as a fork of ``source_id``, recording its
        place in the source's lineage in the same atomic write.

        Raises NotFoundError if the source no longer exists, UniqueConstraintError if the name
        is taken.
        """

    def lineage(self, collection_id: str) -> Lineage | None:
        """The fork tree holding ``collection_id`` (existing or deleted), ``None`` if it was
        never forked nor is a fork."""

    def lineages(self) -> list[Lineage]:
        """Every fork tree (for maintenance sweeps)."""

    def forget_lineage(self, root_id: str) -> None:
        """Remove a fork tree once no collection in it holds storage any more."""

    def reset(self) -> None:
        """Remove tenants, databases, collections and lineage, then recreate the default tenant
        and database. Credentials are not the catalog's: they survive a reset."""


class Credentials(Protocol):
    """What auth checks: API tokens (their SHA-256 hashes) and HTTP Basic users (unique
    usernames, salted password hashes); neither a token's secret nor a password is ever stored.
    A catalog reset leaves them: it is an admin's action, not a lockout."""

    def create_token(self, token: Token) -> None:
        """Store a token record (its hash, never the secret)."""

    def get_token(self, token_hash: str) -> Token | None:
        """The token with this SHA-256 hash, or ``None``."""

    def list_tokens(self) -> list[Token]:
        """Every token, ordered by user id then creation time."""

    def revoke_token(self, token_id: str) -> Token:
        """Delete a token by its public id; raises NotFoundError."""

    def create_basic_credential(self, credential: BasicCredential) -> None:
        """Store a Basic user (its password hash, never the password); raises
        UniqueConstraintError if the username is taken."""

    def get_basic_credential(self, username: str) -> BasicCredential | None:
        """The Basic user with this exact (case-sensitive) username, or ``None``."""

    def list_basic_credentials(self) -> list[BasicCredential]:
        """Every Basic user, ordered by username."""

    def revoke_basic_credential(self, username: str) -> BasicCredential:
        """Delete a Basic user; raises NotFoundError."""


class RecordStore(Protocol):
    """Records of collections, addressed by collection id. Callers validate batches first."""

    def add(self, collection: Collection, batch: RecordBatch) -> None:
        """Insert records whose ids are new; existing ids are left untouched."""

    def upsert(self, collection: Collection, batch: RecordBatch) -> None:
        """Insert new ids; update existing ones as :meth:`update` does."""

    def update(self, collection: Collection, batch: RecordBatch) -> None:
        """Replace the columns sent and merge metadata for ids that exist; ignore the rest."""

    def expect(self, collection_id: str) -> None:
        """A read of the collection follows in this request: start what it needs to know first
        (its log's state), beside the catalog read that precedes it."""

    def get(self, collection: Collection, request: GetRequest) -> GetResult:
        """Records matching the filter in storage order, after offset, at most limit."""

    def query(self, collection: Collection, request: QueryRequest) -> QueryResult:
        """Exact nearest neighbours per query vector among records matching the filter."""

    def delete(self, collection: Collection, request: DeleteRequest) -> int:
        """Delete matching records (at most ``limit``); returns how many were deleted."""

    def count(self, collection: Collection) -> int:
        """Number of records."""

    def maintain(self, collection: Collection, growing: bool = False) -> dict[str, Any]:
        """Build and refresh indexes, compact, clean old versions; returns what it did.
        ``growing``: writes are still arriving; a collection past the index threshold is then
        left for a later run."""

    def index_status(self, collection: Collection) -> tuple[int, int]:
        """(rows in every index, rows some search scans: in neither the vector index nor a
        sparse index); all rows count as indexed while the collection is below the index
        threshold, since exact search is then the plan."""

    def drop(self, collection_id: str) -> bool:
        """Remove every record of a collection (a no-op if it has none); ``False`` if some
        storage could not be removed yet (a concurrent maintainer), left for the sweep."""

    def reset(self) -> bool:
        """Remove the records of every collection; ``False`` as :meth:`drop`."""

    def fork(self, source: Collection, fork_id: str, version: int | None = None) -> int | None:
        """Give ``fork_id`` the records of ``source`` as they are now (or were at
        ``version``, one of :meth:`restore_points`), copy-on-write: no record is copied, the
        source's files stay shared (and pinned in the source) until :meth:`unpin`; the fork
        gets the source's search indexes of that version. Returns the records' dimension,
        ``None`` if the source has none (the fork then starts empty)."""

    def unpin(self, source_id: str, fork_id: str) -> None:
        """``fork_id`` no longer needs the files it shares with ``source_id``."""

    def collection_ids(self) -> list[str]:
        """Ids of the collections that have records in tables (writes still only in the write
        log are not: a collection's first fold creates its table)."""

    def pinned(self, collection: Collection) -> AbstractContextManager[None]:
        """Reads of ``collection`` in the block share one version check and read that version
        (a search's several reads see one version of the records)."""

    def sparse_knn(
        self,
        collection: Collection,
        key: str,
        vector: SparseVector,
        limit: int,
        request_filter: Filter,
        bm25: bool,
    ) -> list[tuple[str, float]]:
        """The ``limit`` records matching the filter nearest to ``vector`` by their sparse
        vector under ``key`` (``1 - dot``; with ``bm25`` the query is weighted by IDF), among
        those sharing a term with it: ``(id, distance)``, ascending, ties in insertion order."""

    def upsert_columns(self, collection: Collection, batch: ColumnBatch) -> None:
        """:meth:`upsert` of a column batch in which every record has an embedding."""

    def scan(
        self, collection: Collection, version: int | None = None, rows: int = SCAN_ROWS
    ) -> Iterator[ColumnBatch]:
        """Every record of one version (default: the latest, pinned when the scan starts), in
        batches of about ``rows``, in storage order."""

    def restore_points(self, collection: Collection) -> list[RestorePoint]:
        """The versions still kept (the retention window and the latest), oldest first."""

    def restore(self, collection: Collection, version: int) -> int:
        """Make the records of ``version`` the latest, as a new version (so it can be undone);
        returns that new version."""


class Log(Protocol):
    """Each collection's write log: writes are acknowledged once their entry is durable here,
    in one total order (the sequence numbers), and folded into the records table later by one
    folder at a time (the holder of the collection's lease). Entries are opaque bytes.

    Appending takes a sequence number first, then stores the entry under it: a writer that
    dies in between leaves a gap, which :meth:`entries` waits for briefly and then closes as
    *abandoned* (``None``); the late writer's store then fails and it appends again, so an
    entry is either readable in order or was never acknowledged."""

    def state(self, collection_id: str) -> LogState:
        """The head and the fold mark, read consistently; ``LogState()`` if never written."""

    def append(self, collection_id: str, entry: bytes) -> int:
        """Store ``entry`` durably after every entry acknowledged before; returns its number."""

    def entries(self, collection_id: str, after: int, upto: int) -> list[bytes | None]:
        """The entries numbered ``after + 1 .. upto`` in order (``None``: abandoned); raises
        :class:`~chroma_serverless.errors.LogTrimmedError` if some of them were trimmed."""

    def mark(
        self, collection_id: str, expected: LogState, folded: int, version: int | None
    ) -> bool:
        """Move the fold mark to (``folded``, ``version``) if it is still ``expected``'s;
        ``False`` if another folder moved it."""

    def trim(self, collection_id: str, upto: int) -> None:
        """Forget the entries up to ``upto`` (folded: the table has them)."""

    def lease(self, collection_id: str, holder: str, seconds: float) -> bool:
        """Take (or renew) the right to write the collection's table for ``seconds``; ``False``
        while another holder's lease runs."""

    def release(self, collection_id: str, holder: str) -> None:
        """Give the lease back (a no-op if ``holder`` no longer has it)."""

    def drop(self, collection_id: str) -> None:
        """Forget the collection's log (its records were dropped)."""

    def reset(self) -> None:
        """Forget every collection's log."""


class Stores(Protocol):
    """The two stores the use cases work on (a :class:`~.service.service.Service` is one)."""

    @property
    def catalog(self) -> Catalog: ...

    @property
    def records(self) -> RecordStore: ...


class Maintainer(Protocol):
    def touch(self, collection_id: str) -> None:
        """A collection was written: maintain it soon (not on the request path)."""
