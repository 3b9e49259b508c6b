"""The AWS catalog: one DynamoDB table (key layout: ``keys.py``), every uniqueness rule a
conditional write.

A tenant's databases are one Query (sorted by name), a database's collections another. Both
collection items carry the full record and are written together in one transaction, conditioned
on the name item not existing (uniqueness per database) and on the database item existing (no
collection can be created in a database being deleted). Database ids are UUIDs, so a database
deleted and recreated under the same name never inherits old collections. Metadata and
configuration are stored as JSON strings so ints, floats and bools keep their exact types.
A fork's two lineage items (its root and parent) are written in the transaction that creates
it, conditioned on its source's by-id item existing; they stay after the fork is deleted (the
collection items go), so a deleted collection's tree is still found by its id, and a tree is
one Query on its root. Whether a tree's collections still exist is read from their by-id items.
A presented token is found with one GetItem on its hash, a Basic user with one on its username;
neither a token's secret nor a password is ever stored (a user's item holds a salted scrypt hash).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chroma_serverless.catalog.dynamodb.keys import (
    CREDENTIAL_PREFIXES,
    EXISTS,
    NOT_EXISTS,
    database_key,
    fork_key,
    id_key,
    lineage_key,
    name_key,
    tenant_key,
)
from chroma_serverless.catalog.dynamodb.table import Table, code
from chroma_serverless.domain.lineage import Lineage
from chroma_serverless.errors import InvalidArgumentError, NotFoundError, UniqueConstraintError
from chroma_serverless.types import (
    DEFAULT_DATABASE,
    DEFAULT_TENANT,
    Collection,
    Database,
    Tenant,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from chroma_serverless.types import Metadata

BATCH_GET_MAX = 100  # keys per BatchGetItem


class DynamoDbCatalog(Table):
    """:class:`~chroma_serverless.catalog.Catalog` on one DynamoDB table (see module doc)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        super().__init__(client, table)
        self._ensure_defaults()

    def _ensure_defaults(self) -> None:
        for create in (
            lambda: self.create_tenant(DEFAULT_TENANT),
            lambda: self.create_database(DEFAULT_TENANT, DEFAULT_DATABASE),
        ):
            try:
                create()
            except UniqueConstraintError:
                pass

    # ------------------------------------------------------------------ tenants

    def create_tenant(self, name: str) -> Tenant:
        try:
            self._db.put_item(
                TableName=self._table,
                Item={**tenant_key(name), "name": {"S": name}},
                ConditionExpression=NOT_EXISTS,
            )
        except ClientError as exc:
            if code(exc) == "ConditionalCheckFailedException":
                raise UniqueConstraintError(f"Tenant [{name}] already exists") from exc
            raise
        return Tenant(name)

    def get_tenant(self, name: str) -> Tenant:
        if self._get(tenant_key(name)) is None:
            raise NotFoundError(f"Tenant [{name}] not found")
        return Tenant(name)

    # ------------------------------------------------------------------ databases

    def create_database(self, tenant: str, name: str) -> Database:
        database = Database(str(uuid.uuid4()), name, tenant)
        item = {
            **database_key(tenant, name),
            "id": {"S": database.id},
            "name": {"S": name},
            "tenant": {"S": tenant},
        }
        reasons = self._transact(
            [
                self._check(tenant_key(tenant), EXISTS),
                self._put(item, NOT_EXISTS),
            ]
        )
        if reasons[0]:
            raise NotFoundError(f"Tenant [{tenant}] not found")
        if reasons[1]:
            raise UniqueConstraintError(f"Database [{name}] already exists")
        return database

    def get_database(self, tenant: str, name: str) -> Database:
        item = self._get(database_key(tenant, name))
        if item is None:
            raise NotFoundError(f"Database [{name}] not found. Are you sure it exists?")
        return Database(item["id"]["S"], name, tenant)

    def list_databases(self, tenant: str, limit: int | None, offset: int) -> list[Database]:
        items = self._query(f"TENANT#{tenant}", "DATABASE#")
        return [Database(i["id"]["S"], i["name"]["S"], tenant) for i in _page(items, limit, offset)]

    def delete_database(self, tenant: str, name: str) -> list[Collection]:
        # The database item goes first: from then on no collection can be created in it, so
        # the consistent query below sees every collection that will ever belong to it.
        try:
            deleted = self._db.delete_item(
                TableName=self._table,
                Key=database_key(tenant, name),
                ConditionExpression=EXISTS,
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if code(exc) == "ConditionalCheckFailedException":
                raise NotFoundError(
                    f"Database [{name}] not found. Are you sure it exists?"
                ) from exc
            raise
        database_id = deleted["Attributes"]["id"]["S"]
        collections = [
            _collection(i) for i in self._query(f"DATABASE#{database_id}", "COLLECTION#")
        ]
        for collection in collections:
            self._transact(
                [
                    self._delete(name_key(database_id, collection.name)),
                    self._delete(id_key(collection.id)),
                ]
            )
        return collections

    # ------------------------------------------------------------------ collections

    def create_collection(
        self, collection: Collection, get_or_create: bool
    ) -> tuple[Collection, bool]:
        reasons = self._transact(self._collection_writes(collection))
        if reasons[0]:
            raise InvalidArgumentError(f"Database [{collection.database}] does not exist")
        if reasons[1]:
            if not get_or_create:
                raise UniqueConstraintError(f"Collection [{collection.name}] already exists")
            return self.get_collection(
                collection.tenant, collection.database, collection.name
            ), False
        return collection, True

    def _collection_writes(self, collection: Collection) -> list[TransactWriteItemTypeDef]:
        """A new collection's writes: its database still there (same id), its name free."""
        try:
            database = self.get_database(collection.tenant, collection.database)
        except NotFoundError as exc:
            raise InvalidArgumentError(f"Database [{collection.database}] does not exist") from exc
        item = _item(collection, database.id)
        return [
            self._check(
                database_key(collection.tenant, collection.database),
                "id = :id",
                {":id": {"S": database.id}},
            ),
            self._put({**item, **name_key(database.id, collection.name)}, NOT_EXISTS),
            self._put({**item, **id_key(collection.id)}, NOT_EXISTS),
        ]

    def get_collection(self, tenant: str, database: str, name: str) -> Collection:
        return _collection(self._name_item(tenant, database, name))

    def _name_item(self, tenant: str, database: str, name: str) -> dict[str, Any]:
        """The collection's by-name item (it carries ``database_id``)."""
        database_id = self._database_id(tenant, database)
        item = None if database_id is None else self._get(name_key(database_id, name))
        if item is None:
            raise NotFoundError(f"Collection [{name}] does not exist")
        return item

    def _database_id(self, tenant: str, database: str) -> str | None:
        item = self._get(database_key(tenant, database))
        return None if item is None else str(item["id"]["S"])

    def get_collection_by_id(self, collection_id: str) -> Collection:
        item = self._get(id_key(collection_id))
        if item is None:
            raise NotFoundError(f"Collection [{collection_id}] does not exist.")
        return _collection(item)

    def list_collections(
        self, tenant: str, database: str, limit: int | None, offset: int
    ) -> list[Collection]:
        database_id = self._database_id(tenant, database)
        if database_id is None:
            return []
        items = self._query(f"DATABASE#{database_id}", "COLLECTION#")
        return [_collection(i) for i in _page(items, limit, offset)]

    def count_collections(self, tenant: str, database: str) -> int:
        database_id = self._database_id(tenant, database)
        if database_id is None:
            return 0
        return len(self._query(f"DATABASE#{database_id}", "COLLECTION#", keys_only=True))

    def all_collections(self) -> list[Collection]:
        items = [i for i in self._scan("COLLECTION#") if i["sk"]["S"] == "COLLECTION"]
        return sorted((_collection(i) for i in items), key=lambda c: c.id)

    def update_collection(
        self,
        collection_id: str,
        name: str | None,
        metadata: Metadata | None,
        configuration: dict[str, Any] | None,
        schema: dict[str, Any] | None = None,
    ) -> Collection:
        current_item = self._get(id_key(collection_id))
        if current_item is None:
            raise NotFoundError(f"Collection [{collection_id}] does not exist.")
        current = _collection(current_item)
        database_id = current_item["database_id"]["S"]
        updated = current.updated(name, metadata, configuration, schema)
        item = _item(updated, database_id)
        # Every write is conditioned on the revision read above, so a concurrent update (or a
        # dimension being fixed) makes this one fail instead of silently overwriting it.
        version = {":v": current_item["revision"]}
        writes: list[TransactWriteItemTypeDef] = [
            self._put({**item, **id_key(current.id)}, "revision = :v", version),
        ]
        if updated.name == current.name:
            writes.append(
                self._put({**item, **name_key(database_id, current.name)}, "revision = :v", version)
            )
        else:
            writes.append(
                self._delete(name_key(database_id, current.name), "revision = :v", version)
            )
            writes.append(self._put({**item, **name_key(database_id, updated.name)}, NOT_EXISTS))
        reasons = self._transact(writes)
        if len(reasons) > 2 and reasons[2]:
            raise UniqueConstraintError(f"Collection [{name}] already exists")
        if any(reasons):
            raise UniqueConstraintError(
                f"Collection [{collection_id}] was modified concurrently; retry"
            )
        return updated

    def delete_collection(self, tenant: str, database: str, name: str) -> Collection:
        item = self._name_item(tenant, database, name)
        collection, database_id = _collection(item), item["database_id"]["S"]
        reasons = self._transact(
            [
                self._delete(name_key(database_id, name), EXISTS),
                self._delete(id_key(collection.id)),
            ]
        )
        if any(reasons):
            raise NotFoundError(f"Collection [{name}] does not exist")
        return collection

    def set_dimension(self, collection_id: str, dimension: int) -> int:
        item = self._get(id_key(collection_id))
        if item is None:
            raise NotFoundError(f"Collection [{collection_id}] does not exist.")
        if "dimension" in item:
            return int(item["dimension"]["N"])
        collection = _collection(item)
        database_id = item["database_id"]["S"]
        values = {
            ":v": item["revision"],
            ":d": {"N": str(dimension)},
            ":r": {"S": uuid.uuid4().hex},
        }
        reasons = self._transact(
            [
                self._update(
                    key,
                    "SET dimension = :d, revision = :r",
                    "attribute_not_exists(dimension) AND revision = :v",
                    values,
                )
                for key in (id_key(collection_id), name_key(database_id, collection.name))
            ]
        )
        if any(reasons):  # another writer fixed it (or the collection changed): read again
            return self.set_dimension(collection_id, dimension)
        return dimension

    # ------------------------------------------------------------------ lineage

    def fork_collection(self, fork: Collection, source_id: str) -> Collection:
        source_lineage = self._get(lineage_key(source_id))
        root = source_id if source_lineage is None else source_lineage["root"]["S"]
        reasons = self._transact(
            [
                *self._collection_writes(fork),
                self._check(id_key(source_id), EXISTS),
                self._put(
                    {
                        **lineage_key(fork.id),
                        "root": {"S": root},
                        "parent": {"S": source_id},
                    }
                ),
                self._put({**fork_key(root, fork.id), "parent": {"S": source_id}}),
            ]
        )
        if reasons[0] or reasons[3]:  # the source (or its database) is gone
            raise NotFoundError(f"Collection [{source_id}] does not exist.")
        if reasons[1]:
            raise UniqueConstraintError(f"Collection [{fork.name}] already exists")
        return fork

    def lineage(self, collection_id: str) -> Lineage | None:
        item = self._get(lineage_key(collection_id))
        return self._lineage(collection_id if item is None else item["root"]["S"])

    def lineages(self) -> list[Lineage]:
        parents: dict[str, dict[str, str]] = {}
        for item in self._scan("LINEAGE#"):
            root = item["pk"]["S"].removeprefix("LINEAGE#")
            fork = item["sk"]["S"].removeprefix("FORK#")
            parents.setdefault(root, {})[fork] = item["parent"]["S"]
        return [self._with_live(root, forks) for root, forks in sorted(parents.items())]

    def _lineage(self, root: str) -> Lineage | None:
        items = self._query(f"LINEAGE#{root}", "FORK#")
        if not items:
            return None
        forks = {i["sk"]["S"].removeprefix("FORK#"): i["parent"]["S"] for i in items}
        return self._with_live(root, forks)

    def _with_live(self, root: str, parents: dict[str, str]) -> Lineage:
        members = [root, *parents]
        live: set[str] = set()
        for start in range(0, len(members), BATCH_GET_MAX):
            keys = [id_key(m) for m in members[start : start + BATCH_GET_MAX]]
            request: Any = {
                self._table: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "pk"}
            }
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self._table, []):
                    live.add(item["pk"]["S"].removeprefix("COLLECTION#"))
                request = response.get("UnprocessedKeys") or None
        return Lineage(root, parents, frozenset(live))

    def forget_lineage(self, root_id: str) -> None:
        for item in self._query(f"LINEAGE#{root_id}", "FORK#", keys_only=True):
            fork_id = item["sk"]["S"].removeprefix("FORK#")
            self._db.delete_item(TableName=self._table, Key=lineage_key(fork_id))
            self._db.delete_item(TableName=self._table, Key={k: item[k] for k in ("pk", "sk")})

    def reset(self) -> None:
        for item in self._scan():
            if not item["pk"]["S"].startswith(CREDENTIAL_PREFIXES):
                self._db.delete_item(TableName=self._table, Key={k: item[k] for k in ("pk", "sk")})
        self._ensure_defaults()


def _page(items: list[dict[str, Any]], limit: int | None, offset: int) -> list[dict[str, Any]]:
    return items[offset:] if limit is None else items[offset : offset + limit]


def _item(collection: Collection, database_id: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": {"S": collection.id},
        "name": {"S": collection.name},
        "tenant": {"S": collection.tenant},
        "database": {"S": collection.database},
        "database_id": {"S": database_id},
        "configuration": {"S": json.dumps(collection.configuration)},
        "revision": {"S": uuid.uuid4().hex},  # changes on every write; guards read-modify-write
    }
    if collection.metadata is not None:
        item["metadata"] = {"S": json.dumps(collection.metadata)}
    if collection.dimension is not None:
        item["dimension"] = {"N": str(collection.dimension)}
    if collection.schema is not None:
        item["schema"] = {"S": json.dumps(collection.schema)}
    return item


def _collection(item: dict[str, Any]) -> Collection:
    return Collection(
        id=item["id"]["S"],
        name=item["name"]["S"],
        tenant=item["tenant"]["S"],
        database=item["database"]["S"],
        metadata=json.loads(item["metadata"]["S"]) if "metadata" in item else None,
        configuration=json.loads(item["configuration"]["S"]),
        dimension=int(item["dimension"]["N"]) if "dimension" in item else None,
        schema=json.loads(item["schema"]["S"]) if "schema" in item else None,
    )
