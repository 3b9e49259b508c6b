"""The Chroma API as use cases over the ports (catalog and record store).

Routes call exactly one method here; everything above the seams is shared by the embedded default
and the AWS deployment. The stores and the maintainer come in through the constructor
(``wiring.py`` builds them).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import TYPE_CHECKING, Any

from chroma_serverless.auth.access import can_see_database
from chroma_serverless.domain import checks
from chroma_serverless.domain.metadata import validate_collection_metadata
from chroma_serverless.domain.schema import indexes, validation
from chroma_serverless.domain.schema.configuration import internal_configuration
from chroma_serverless.errors import (
    ForbiddenError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
)
from chroma_serverless.observe import metrics, tracing
from chroma_serverless.ports import SCAN_ROWS
from chroma_serverless.search.parse import check as check_search
from chroma_serverless.service import forks, restore, searching
from chroma_serverless.service.maintenance import NoMaintenance, maintain
from chroma_serverless.types import ANY, Collection, QueryResult

log = logging.getLogger("chroma_serverless.service")

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chroma_serverless.domain.columns import ColumnBatch
    from chroma_serverless.ports import Catalog, Maintainer, RecordStore
    from chroma_serverless.search.model import Found, Search
    from chroma_serverless.types import (
        Database,
        DeleteRequest,
        GetRequest,
        GetResult,
        Principal,
        QueryRequest,
        RecordBatch,
        Restored,
        RestorePoint,
        Tenant,
        Vectors,
    )


DEFAULT_FUNCTION = {"type": "known", "name": "default", "config": {}}


class Service:
    def __init__(
        self,
        catalog: Catalog,
        records: RecordStore | None,
        maintainer: Maintainer | None = None,
        *,
        allow_reset: bool = False,
    ) -> None:
        self.catalog = catalog
        self._records = records
        self.maintainer: Maintainer = maintainer or NoMaintenance()
        self.allow_reset = allow_reset

    @property
    def records(self) -> RecordStore:
        """The record store; absent in the control-plane function, which never routes here."""
        if self._records is None:
            raise InternalError("This function serves no record routes")
        return self._records

    # ------------------------------------------------------------------ system

    def reset(self) -> bool:
        if not self.allow_reset:
            raise ForbiddenError("Reset is disabled by config")
        self.catalog.reset()
        if not self.records.reset():
            log.warning("reset: some record files remain for the sweep")
        return True

    # ------------------------------------------------------------------ tenants, databases

    def create_tenant(self, name: str) -> Tenant:
        return self.catalog.create_tenant(checks.tenant_name(name))

    def get_tenant(self, name: str) -> Tenant:
        return self.catalog.get_tenant(name)

    def create_database(self, tenant: str, name: str) -> Database:
        return self.catalog.create_database(tenant, checks.database_name(name))

    def get_database(self, tenant: str, name: str) -> Database:
        return self.catalog.get_database(tenant, name)

    def list_databases(
        self, tenant: str, principal: Principal, limit: int | None, offset: int | None
    ) -> list[Database]:
        """The tenant's databases that ``principal`` may see, paged after that filter."""
        limit, offset = checks.page(limit, offset)
        if ANY in principal.databases:
            return self.catalog.list_databases(tenant, limit, offset)
        visible = [
            d
            for d in self.catalog.list_databases(tenant, None, 0)
            if can_see_database(principal, d.name)
        ]
        return visible[offset:] if limit is None else visible[offset : offset + limit]

    def delete_database(self, tenant: str, name: str) -> None:
        for collection in self.catalog.delete_database(tenant, name):
            self._release_records(collection.id)

    # ------------------------------------------------------------------ collections

    def create_collection(
        self,
        tenant: str,
        database: str,
        name: str,
        metadata: dict[str, Any] | None,
        configuration: dict[str, Any] | None,
        get_or_create: bool,
        schema: dict[str, Any] | None = None,
    ) -> Collection:
        metadata = validate_collection_metadata(metadata, "metadata")
        sent_schema = validation.parse(schema)
        internal = internal_configuration(configuration, metadata)
        reconciled = indexes.reconcile(sent_schema, internal)
        collection = Collection(
            id=str(uuid.uuid4()),
            name=checks.collection_name(name),
            tenant=tenant,
            database=database,
            metadata=metadata,
            configuration=indexes.to_configuration(reconciled),
            schema=reconciled,
        )
        stored, _ = self.catalog.create_collection(collection, get_or_create)
        return stored

    def get_collection(self, tenant: str, database: str, name: str) -> Collection:
        return self.catalog.get_collection(tenant, database, name)

    def get_collection_by_id(self, tenant: str, database: str, collection_id: str) -> Collection:
        return self.collection(tenant, database, collection_id)

    def list_collections(
        self, tenant: str, database: str, limit: int | None, offset: int | None
    ) -> list[Collection]:
        return self.catalog.list_collections(tenant, database, *checks.page(limit, offset))

    def count_collections(self, tenant: str, database: str) -> int:
        return self.catalog.count_collections(tenant, database)

    def modify_collection(
        self,
        tenant: str,
        database: str,
        collection_id: str,
        new_name: str | None,
        new_metadata: dict[str, Any] | None,
        new_configuration: dict[str, Any] | None,
    ) -> Collection:
        current = self.collection(tenant, database, collection_id)
        schema = configuration = None
        if new_configuration is not None:
            schema = indexes.updated(
                current.schema or indexes.from_configuration(current.configuration),
                new_configuration,
            )
            configuration = indexes.to_configuration(schema)
        return self.catalog.update_collection(
            current.id,
            None if new_name is None else checks.collection_name(new_name),
            validate_collection_metadata(new_metadata, "new_metadata"),
            configuration,
            schema,
        )

    def delete_collection(self, tenant: str, database: str, name: str) -> None:
        collection = self.catalog.delete_collection(tenant, database, name)
        self._release_records(collection.id)

    def _release_records(self, collection_id: str) -> None:
        """The delete has happened once the catalog entry is gone: the id is never served
        again. Its records go unless forks still share them; files a concurrent maintainer kept
        writing are removed by that maintainer when it sees the collection gone, or by the
        sweep; the user's delete still succeeds."""
        forks.release(self.catalog, self.records, collection_id)

    def fork_collection(
        self, tenant: str, database: str, collection_id: str, new_name: str
    ) -> Collection:
        source = self.collection(tenant, database, collection_id)
        return forks.fork(self.catalog, self.records, source, new_name)

    def fork_count(self, tenant: str, database: str, collection_id: str) -> int:
        return forks.fork_count(self.catalog, self.collection(tenant, database, collection_id))

    def restore_points(self, collection: Collection) -> list[RestorePoint]:
        """The versions of ``collection``'s records still kept, oldest first."""
        return self.records.restore_points(collection)

    def restore(self, collection: Collection, to: str, new_name: str | None = None) -> Restored:
        """Restore ``collection``'s records to the version ``to`` names, in place or as the new
        collection ``new_name`` (:mod:`chroma_serverless.service.restore`)."""
        return restore.restore(self, self.maintainer, collection, to, new_name)

    def indexing_status(self, collection: Collection) -> tuple[int, int]:
        """(records indexed, records some search scans)."""
        return self.records.index_status(collection)

    def maintain(self, collection: Collection) -> dict[str, Any]:
        """Maintain ``collection`` now (after an import): index, compact, clean up."""
        return maintain(self, collection.id)

    def collection(
        self, tenant: str, database: str, collection_id: str, reading: bool = False
    ) -> Collection:
        """The collection a record route addresses; its tenant and database must match. A
        route that reads its records says so (``reading``): the store then starts its own
        first request beside the catalog's."""
        try:
            uuid.UUID(collection_id)
        except ValueError as exc:
            raise InvalidArgumentError("Collection ID is not a valid UUIDv4") from exc
        if reading:
            self.records.expect(collection_id)
        collection = self.catalog.get_collection_by_id(collection_id)
        if (collection.tenant, collection.database) != (tenant, database):
            raise NotFoundError(f"Collection [{collection_id}] does not exist.")
        return collection

    # ------------------------------------------------------------------ records

    def add(self, collection: Collection, batch: RecordBatch) -> None:
        batch = self._embedded(collection, batch)
        self.records.add(self._fix_dimension(collection, batch), batch)
        metrics.count(metrics.RECORDS_WRITTEN, len(batch.ids))
        self.maintainer.touch(collection.id)

    def upsert(self, collection: Collection, batch: RecordBatch) -> None:
        batch = self._embedded(collection, batch)
        self.records.upsert(self._fix_dimension(collection, batch), batch)
        metrics.count(metrics.RECORDS_WRITTEN, len(batch.ids))
        self.maintainer.touch(collection.id)

    def update(self, collection: Collection, batch: RecordBatch) -> None:
        if batch.embeddings is None and batch.documents is not None:
            batch = self._embedded(collection, batch)
        if batch.embeddings is not None:
            self._check_dimension(collection, batch.embeddings.shape[1])
        self.records.update(collection, batch)
        metrics.count(metrics.RECORDS_WRITTEN, len(batch.ids))
        self.maintainer.touch(collection.id)

    def get(self, collection: Collection, request: GetRequest) -> GetResult:
        result = self.records.get(collection, request)
        metrics.count(metrics.RECORDS_RETURNED, len(result.ids))
        return result

    def query(self, collection: Collection, request: QueryRequest) -> QueryResult:
        if request.texts:
            request = dataclasses.replace(
                request, embeddings=self._embed(collection, request.texts)
            )
        if len(request.embeddings) == 0:
            return QueryResult(ids=[])
        self._check_dimension(collection, request.embeddings.shape[1])
        with metrics.timed(metrics.QUERY_TIME):
            result = self.records.query(collection, request)
        metrics.count(metrics.RECORDS_RETURNED, sum(len(ids) for ids in result.ids))
        return result

    def search(self, collection: Collection, requests: list[Search]) -> list[Found]:
        """Every search is checked before any runs."""
        for request in requests:
            check_search(request, collection)
        with metrics.timed(metrics.QUERY_TIME), self.records.pinned(collection):
            found = [searching.run(self.records, collection, request) for request in requests]
        metrics.count(metrics.RECORDS_RETURNED, sum(len(f.ids) for f in found))
        return found

    def delete(self, collection: Collection, request: DeleteRequest) -> int:
        deleted = self.records.delete(collection, request)
        if deleted:
            self.maintainer.touch(collection.id)
        return deleted

    def count(self, collection: Collection) -> int:
        return self.records.count(collection)

    def _embedded(self, collection: Collection, batch: RecordBatch) -> RecordBatch:
        """The batch with vectors: as sent, or embedded from its documents on the server."""
        if batch.embeddings is not None:
            return batch
        if batch.documents is None or any(d is None for d in batch.documents):
            raise InvalidArgumentError(
                "Expected embeddings, or documents for every record to embed on the server"
            )
        texts = [d for d in batch.documents if d is not None]
        return dataclasses.replace(batch, embeddings=self._embed(collection, texts))

    @staticmethod
    def _embed(collection: Collection, texts: list[str]) -> Vectors:
        from chroma_serverless.embedding import model as embedding

        # A collection without a function is embedded with Chroma's default, as the official
        # client itself does for it (its schema model defaults the function).
        config = collection.configuration.get("embedding_function") or DEFAULT_FUNCTION
        try:
            function = embedding.resolve(config)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"{exc}. This collection's embedding function runs in the client: send "
                "embeddings (or query_embeddings)"
            ) from exc
        if function is None:
            raise InvalidArgumentError(
                "This collection has no server-side embedding function: send embeddings"
            )
        try:
            with metrics.timed(metrics.EMBEDDING_TIME), tracing.segment("embed"):
                return function(texts)
        except embedding.ModelUnavailableError as exc:
            raise InvalidArgumentError(str(exc)) from exc

    def _fix_dimension(self, collection: Collection, batch: RecordBatch) -> Collection:
        assert batch.embeddings is not None
        return self._fixed_dimension(collection, batch.embeddings.shape[1])

    def _fixed_dimension(self, collection: Collection, dimension: int) -> Collection:
        """The first write fixes the collection's dimension; later ones must match it."""
        if collection.dimension is None:
            fixed = self.catalog.set_dimension(collection.id, dimension)
            collection = dataclasses.replace(collection, dimension=fixed)
        self._check_dimension(collection, dimension)
        return collection

    @staticmethod
    def _check_dimension(collection: Collection, dimension: int) -> None:
        if collection.dimension is not None and collection.dimension != dimension:
            raise InvalidArgumentError(
                f"Collection expecting embedding with dimension of {collection.dimension}, "
                f"got {dimension}"
            )

    # ------------------------------------------------------------------ bulk

    def scan(
        self, collection: Collection, version: int | None = None, rows: int = SCAN_ROWS
    ) -> Iterator[ColumnBatch]:
        """Every record of one version (default: the latest), in batches (exports)."""
        return self.records.scan(collection, version, rows)

    def upsert_columns(self, collection: Collection, batch: ColumnBatch) -> Collection:
        """:meth:`upsert` of a column batch (imports); returns the collection with the dimension
        its first write fixed."""
        missing = batch.missing_vectors()
        if len(missing):
            batch = batch.with_vectors(missing, self._embed(collection, batch.texts(missing)))
        assert batch.dimension is not None
        collection = self._fixed_dimension(collection, batch.dimension)
        self.records.upsert_columns(collection, batch)
        self.maintainer.touch(collection.id)
        return collection
