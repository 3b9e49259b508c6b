"""The AWS catalog: one DynamoDB table, every uniqueness rule a conditional write.

Key layout (``pk`` hash key, ``sk`` range key, both strings; the same comment sits beside the
table in template.yaml):

=============================  ==========================  ====================================
item                           pk                          sk
=============================  ==========================  ====================================
tenant                         ``TENANT#<tenant>``         ``TENANT``
database                       ``TENANT#<tenant>``         ``DATABASE#<name>``
collection, by name            ``DATABASE#<database id>``  ``COLLECTION#<name>``
collection, by id              ``COLLECTION#<id>``         ``COLLECTION``
a fork's lineage, by its id    ``COLLECTION#<id>``         ``LINEAGE``
a fork, in its lineage         ``LINEAGE#<root id>``       ``FORK#<id>``
token                          ``TOKEN#<sha-256>``         ``TOKEN``
Basic user                     ``BASIC#<username>``        ``BASIC``
=============================  ==========================  ====================================

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
import random
import time
import uuid
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chroma_serverless.catalog import DEFAULT_DATABASE, DEFAULT_TENANT
from chroma_serverless.errors import InvalidArgumentError, NotFoundError, UniqueConstraintError
from chroma_serverless.lineage import Lineage
from chroma_serverless.types import (
    BasicCredential,
    Collection,
    Database,
    Principal,
    Tenant,
    Token,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from chroma_serverless.settings import Settings
    from chroma_serverless.types import Metadata

KEY_SCHEMA = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
ATTRIBUTES = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "S"},
]
TRANSACTION_RETRIES = 6
BATCH_GET_MAX = 100  # keys per BatchGetItem
NOT_EXISTS = "attribute_not_exists(pk)"
EXISTS = "attribute_exists(pk)"


def tenant_key(tenant: str) -> dict[str, Any]:
    return {"pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": "TENANT"}}


def database_key(tenant: str, name: str) -> dict[str, Any]:
    return {"pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": f"DATABASE#{name}"}}


def name_key(database_id: str, name: str) -> dict[str, Any]:
    return {"pk": {"S": f"DATABASE#{database_id}"}, "sk": {"S": f"COLLECTION#{name}"}}


def id_key(collection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"COLLECTION#{collection_id}"}, "sk": {"S": "COLLECTION"}}


def lineage_key(collection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"COLLECTION#{collection_id}"}, "sk": {"S": "LINEAGE"}}


def fork_key(root_id: str, fork_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"LINEAGE#{root_id}"}, "sk": {"S": f"FORK#{fork_id}"}}


def token_key(token_hash: str) -> dict[str, Any]:
    return {"pk": {"S": f"TOKEN#{token_hash}"}, "sk": {"S": "TOKEN"}}


def basic_key(username: str) -> dict[str, Any]:
    return {"pk": {"S": f"BASIC#{username}"}, "sk": {"S": "BASIC"}}


# Items a reset keeps: credentials are not data (an admin's reset must not lock everyone out).
CREDENTIAL_PREFIXES = ("TOKEN#", "BASIC#")


class DynamoDbCatalog:
    """:class:`~chroma_serverless.catalog.Catalog` on one DynamoDB table (see module doc)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._db = client
        self._table = table
        self._ensure_defaults()

    @classmethod
    def from_settings(cls, settings: Settings) -> DynamoDbCatalog:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "dynamodb",
            endpoint_url=settings.aws_endpoint,
            region_name=settings.aws_region,
            config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3),
        )
        return cls(client, settings.catalog_table)

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
            if _code(exc) == "ConditionalCheckFailedException":
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
                {
                    "ConditionCheck": {
                        "TableName": self._table,
                        "Key": tenant_key(tenant),
                        "ConditionExpression": EXISTS,
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": item,
                        "ConditionExpression": NOT_EXISTS,
                    }
                },
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
            if _code(exc) == "ConditionalCheckFailedException":
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
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": name_key(database_id, collection.name),
                        }
                    },
                    {"Delete": {"TableName": self._table, "Key": id_key(collection.id)}},
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
            {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": database_key(collection.tenant, collection.database),
                    "ConditionExpression": "id = :id",
                    "ExpressionAttributeValues": {":id": {"S": database.id}},
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {**item, **name_key(database.id, collection.name)},
                    "ConditionExpression": NOT_EXISTS,
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {**item, **id_key(collection.id)},
                    "ConditionExpression": NOT_EXISTS,
                }
            },
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
        updated = Collection(
            id=current.id,
            name=current.name if name is None else name,
            tenant=current.tenant,
            database=current.database,
            metadata=current.metadata if metadata is None else metadata,
            configuration=current.configuration if configuration is None else configuration,
            dimension=current.dimension,
            schema=current.schema if schema is None else schema,
        )
        item = _item(updated, database_id)
        # Every write is conditioned on the revision read above, so a concurrent update (or a
        # dimension being fixed) makes this one fail instead of silently overwriting it.
        version = {":v": current_item["revision"]}
        writes: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {**item, **id_key(current.id)},
                    "ConditionExpression": "revision = :v",
                    "ExpressionAttributeValues": version,
                }
            },
        ]
        if updated.name == current.name:
            writes.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {**item, **name_key(database_id, current.name)},
                        "ConditionExpression": "revision = :v",
                        "ExpressionAttributeValues": version,
                    }
                }
            )
        else:
            writes.append(
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": name_key(database_id, current.name),
                        "ConditionExpression": "revision = :v",
                        "ExpressionAttributeValues": version,
                    }
                }
            )
            writes.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {**item, **name_key(database_id, updated.name)},
                        "ConditionExpression": NOT_EXISTS,
                    }
                }
            )
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
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": name_key(database_id, name),
                        "ConditionExpression": EXISTS,
                    }
                },
                {"Delete": {"TableName": self._table, "Key": id_key(collection.id)}},
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
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": key,
                        "ConditionExpression": "attribute_not_exists(dimension) AND revision = :v",
                        "ExpressionAttributeValues": values,
                        "UpdateExpression": "SET dimension = :d, revision = :r",
                    }
                }
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
                {
                    "ConditionCheck": {
                        "TableName": self._table,
                        "Key": id_key(source_id),
                        "ConditionExpression": EXISTS,
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **lineage_key(fork.id),
                            "root": {"S": root},
                            "parent": {"S": source_id},
                        },
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {**fork_key(root, fork.id), "parent": {"S": source_id}},
                    }
                },
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

    # ------------------------------------------------------------------ tokens

    def create_token(self, token: Token) -> None:
        principal = token.principal
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **token_key(token.hash),
                    "id": {"S": token.id},
                    "user_id": {"S": principal.user_id},
                    "tenant": {"S": principal.tenant},
                    "databases": {"L": [{"S": d} for d in principal.databases]},
                    "role": {"S": principal.role},
                    "created_at": {"S": token.created_at},
                },
                ConditionExpression=NOT_EXISTS,
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise UniqueConstraintError(f"Token [{token.id}] already exists") from exc
            raise

    def get_token(self, token_hash: str) -> Token | None:
        item = self._get(token_key(token_hash))
        return None if item is None else _token(item)

    def list_tokens(self) -> list[Token]:
        tokens = [_token(item) for item in self._scan("TOKEN#")]
        return sorted(tokens, key=lambda t: (t.principal.user_id, t.created_at))

    def revoke_token(self, token_id: str) -> Token:
        for token in self.list_tokens():
            if token.id == token_id:
                self._db.delete_item(TableName=self._table, Key=token_key(token.hash))
                return token
        raise NotFoundError(f"Token [{token_id}] does not exist")

    # ------------------------------------------------------------------ basic credentials

    def create_basic_credential(self, credential: BasicCredential) -> None:
        principal = credential.principal
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **basic_key(credential.username),
                    "password_hash": {"S": credential.password_hash},
                    "tenant": {"S": principal.tenant},
                    "databases": {"L": [{"S": d} for d in principal.databases]},
                    "role": {"S": principal.role},
                    "created_at": {"S": credential.created_at},
                },
                ConditionExpression=NOT_EXISTS,
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                message = f"User [{credential.username}] already exists"
                raise UniqueConstraintError(message) from exc
            raise

    def get_basic_credential(self, username: str) -> BasicCredential | None:
        item = self._get(basic_key(username))
        return None if item is None else _basic_credential(item)

    def list_basic_credentials(self) -> list[BasicCredential]:
        credentials = [_basic_credential(item) for item in self._scan("BASIC#")]
        return sorted(credentials, key=lambda c: c.username)

    def revoke_basic_credential(self, username: str) -> BasicCredential:
        try:
            response = self._db.delete_item(
                TableName=self._table,
                Key=basic_key(username),
                ConditionExpression=EXISTS,
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise NotFoundError(f"User [{username}] does not exist") from exc
            raise
        return _basic_credential(response["Attributes"])

    def reset(self) -> None:
        for item in self._scan():
            if not item["pk"]["S"].startswith(CREDENTIAL_PREFIXES):
                self._db.delete_item(TableName=self._table, Key={k: item[k] for k in ("pk", "sk")})
        self._ensure_defaults()

    def _scan(self, prefix: str | None = None) -> list[dict[str, Any]]:
        """Every item, or those whose pk starts with ``prefix`` (admin paths: reset,
        credential listings)."""
        extra: dict[str, Any] = {}
        if prefix is not None:
            extra = {
                "FilterExpression": "begins_with(pk, :prefix)",
                "ExpressionAttributeValues": {":prefix": {"S": prefix}},
            }
        items: list[dict[str, Any]] = []
        for page in self._db.get_paginator("scan").paginate(
            TableName=self._table, ConsistentRead=True, **extra
        ):
            items.extend(page["Items"])
        return items

    # ------------------------------------------------------------------ plumbing

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        return response.get("Item")

    def _query(self, pk: str, prefix: str, keys_only: bool = False) -> list[dict[str, Any]]:
        paginator = self._db.get_paginator("query")
        extra: dict[str, Any] = {"ProjectionExpression": "pk, sk"} if keys_only else {}
        items: list[dict[str, Any]] = []
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": prefix}},
            ConsistentRead=True,
            **extra,
        ):
            items.extend(page["Items"])
        return items

    def _transact(self, items: list[TransactWriteItemTypeDef]) -> list[bool]:
        """Run a transaction; returns, per item, whether its condition failed (all False = ok).

        DynamoDB cancels a transaction that collides with another one in flight
        (``TransactionConflict``); it is retried, so the conditions decide who wins.
        """
        for attempt in range(TRANSACTION_RETRIES):
            try:
                self._db.transact_write_items(TransactItems=items)
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons", [])
                codes = [r.get("Code", "None") for r in reasons]
                if any(code == "ConditionalCheckFailed" for code in codes):
                    return [code == "ConditionalCheckFailed" for code in codes]
                if "TransactionConflict" not in codes or attempt == TRANSACTION_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
            else:
                return [False] * len(items)
        raise AssertionError("unreachable")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


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


def _token(item: dict[str, Any]) -> Token:
    principal = Principal(
        item["user_id"]["S"],
        item["tenant"]["S"],
        tuple(d["S"] for d in item["databases"]["L"]),
        item["role"]["S"],
    )
    return Token(
        item["id"]["S"], item["pk"]["S"].removeprefix("TOKEN#"), principal, item["created_at"]["S"]
    )


def _basic_credential(item: dict[str, Any]) -> BasicCredential:
    username = item["pk"]["S"].removeprefix("BASIC#")
    principal = Principal(
        username,
        item["tenant"]["S"],
        tuple(d["S"] for d in item["databases"]["L"]),
        item["role"]["S"],
    )
    return BasicCredential(username, item["password_hash"]["S"], principal, item["created_at"]["S"])


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
