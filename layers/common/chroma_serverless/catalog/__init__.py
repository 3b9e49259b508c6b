"""The catalog seam: tenants, databases and collections (ids, names, metadata, configuration,
schema).

Every implementation passes tests/test_catalog_contract.py. Uniqueness rules (tenant name,
database name per tenant, collection name per database) are enforced by the store itself, never
by a read-then-write in the caller, so concurrent creates cannot both win.

It also keeps fork lineage (:mod:`chroma_serverless.lineage`): which collection each fork was
forked from, recorded in the same atomic write that creates the fork, and kept after deletions
so the storage forks share is released only when nothing needs it any more.

It also keeps what auth checks: token hashes, and Basic users (unique usernames) with their
password hashes; neither a token's secret nor a password is ever stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chroma_serverless.lineage import Lineage
    from chroma_serverless.types import (
        BasicCredential,
        Collection,
        Database,
        Metadata,
        Tenant,
        Token,
    )

DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"


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

    def reset(self) -> None:
        """Remove tenants, databases, collections and lineage, then recreate the default tenant and
        database. Tokens and Basic users survive a reset: it is an admin's action, not a
        lockout."""
