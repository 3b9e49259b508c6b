"""Where transferred records go and come from: the storage itself (the embedded data directory, or
the AWS stack's table and bucket), or a running server's v2 API (:mod:`.http`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from chroma_serverless.errors import NotFoundError, UniqueConstraintError
from chroma_serverless.ports import SCAN_ROWS
from chroma_serverless.transfer.recreate import creation

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chroma_serverless.domain.columns import ColumnBatch
    from chroma_serverless.service.service import Service
    from chroma_serverless.types import Collection, Restored, RestorePoint


class Endpoint(Protocol):
    """One database of a deployment."""

    tenant: str
    database: str

    @property
    def identity(self) -> str:
        """Names the deployment and database (checkpoints are kept per identity)."""

    @property
    def batch_limit(self) -> int | None:
        """Most records one write may carry (``None``: no limit)."""

    def collection(self, name: str) -> Collection:
        """Raises NotFoundError."""

    def create_collection(self, name: str, like: Collection | None) -> tuple[Collection, bool]:
        """The collection ``name``, created (with ``like``'s metadata, configuration and schema,
        exactly) if absent; and whether this call created it."""

    def drop(self, collection: Collection) -> None:
        """Delete a collection (one an import created and then failed to fill)."""

    def collections(self) -> list[Collection]:
        """Every collection of the database, by name."""

    def upsert(self, collection: Collection, batch: ColumnBatch) -> Collection:
        """Write records (embedding those without a vector with the collection's function);
        returns the collection as it is afterwards (its dimension fixed)."""

    def count(self, collection: Collection) -> int: ...

    def scan(
        self, collection: Collection, version: int | None = None, rows: int = SCAN_ROWS
    ) -> Iterator[ColumnBatch]:
        """Every record, in batches with the same metadata columns."""

    def imported(self, collection: Collection) -> dict[str, Any]:
        """After an import: index and compact now if nothing else will."""

    def restore_points(self, collection: Collection) -> list[RestorePoint]: ...

    def restore(self, collection: Collection, to: str, new_name: str | None) -> Restored:
        """Restore to the version ``to`` names (see ``service.restore.point_at``)."""


def find(endpoint: Endpoint, name: str) -> Collection | None:
    """The collection ``name`` of ``endpoint``, or ``None``."""
    try:
        return endpoint.collection(name)
    except NotFoundError:
        return None


class StorageEndpoint:
    """Records written and read through a :class:`Service` on the storage itself."""

    def __init__(self, service: Service, deployment: str, tenant: str, database: str) -> None:
        self.service, self.tenant, self.database = service, tenant, database
        self._deployment = deployment  # ``wiring.identity``
        self.service.get_database(tenant, database)  # NotFoundError before any work

    @property
    def identity(self) -> str:
        return f"{self._deployment}/{self.tenant}/{self.database}"

    @property
    def batch_limit(self) -> int | None:
        return None

    def collection(self, name: str) -> Collection:
        return self.service.get_collection(self.tenant, self.database, name)

    def create_collection(self, name: str, like: Collection | None) -> tuple[Collection, bool]:
        plan = creation(like)
        try:
            made = self.service.create_collection(
                self.tenant, self.database, name, plan.metadata, None, False, plan.schema
            )
        except UniqueConstraintError:
            return self.collection(name), False
        if plan.then_metadata is not None:
            made = self.service.modify_collection(
                self.tenant, self.database, made.id, None, plan.then_metadata, None
            )
        return made, True

    def drop(self, collection: Collection) -> None:
        self.service.delete_collection(self.tenant, self.database, collection.name)

    def collections(self) -> list[Collection]:
        return self.service.list_collections(self.tenant, self.database, None, None)

    def upsert(self, collection: Collection, batch: ColumnBatch) -> Collection:
        return self.service.upsert_columns(collection, batch)

    def count(self, collection: Collection) -> int:
        return self.service.count(collection)

    def scan(
        self, collection: Collection, version: int | None = None, rows: int = SCAN_ROWS
    ) -> Iterator[ColumnBatch]:
        return self.service.scan(collection, version, rows)

    def imported(self, collection: Collection) -> dict[str, Any]:
        return self.service.maintain(collection)

    def restore_points(self, collection: Collection) -> list[RestorePoint]:
        return self.service.restore_points(collection)

    def restore(self, collection: Collection, to: str, new_name: str | None) -> Restored:
        return self.service.restore(collection, to, new_name)
