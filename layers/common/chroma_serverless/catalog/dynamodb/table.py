"""One DynamoDB table as the catalog and the credentials use it: consistent reads, paginated
queries and scans, and transactions whose failed conditions are reported per item."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from chroma_serverless.settings import Settings

TRANSACTION_RETRIES = 6
Values = dict[str, Any]  # an expression's attribute values


def client(settings: Settings) -> DynamoDBClient:
    """A DynamoDB client for ``settings``' region (and endpoint: moto's, offline)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        endpoint_url=settings.aws_endpoint,
        region_name=settings.aws_region,
        config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3),
    )


class Table:
    """The table ``table`` through ``client``; a base for the stores kept in it."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._db = client
        self._table = table

    @property
    def client(self) -> DynamoDBClient:
        return self._db

    @property
    def name(self) -> str:
        return self._table

    # Items of a transaction (:meth:`_transact`): a write of this table, conditioned on
    # ``condition`` (with the expression's ``values``) when given.

    def _put(
        self, item: dict[str, Any], condition: str | None = None, values: Values | None = None
    ) -> TransactWriteItemTypeDef:
        return {"Put": self._conditioned({"Item": item}, condition, values)}  # type: ignore[typeddict-item]

    def _delete(
        self, key: dict[str, Any], condition: str | None = None, values: Values | None = None
    ) -> TransactWriteItemTypeDef:
        return {"Delete": self._conditioned({"Key": key}, condition, values)}  # type: ignore[typeddict-item]

    def _check(
        self, key: dict[str, Any], condition: str, values: Values | None = None
    ) -> TransactWriteItemTypeDef:
        return {"ConditionCheck": self._conditioned({"Key": key}, condition, values)}  # type: ignore[typeddict-item]

    def _update(
        self, key: dict[str, Any], expression: str, condition: str, values: Values
    ) -> TransactWriteItemTypeDef:
        write = self._conditioned({"Key": key, "UpdateExpression": expression}, condition, values)
        return {"Update": write}  # type: ignore[typeddict-item]

    def _conditioned(
        self, write: dict[str, Any], condition: str | None, values: Values | None
    ) -> dict[str, Any]:
        write["TableName"] = self._table
        if condition is not None:
            write["ConditionExpression"] = condition
        if values is not None:
            write["ExpressionAttributeValues"] = values
        return write

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
                if code(exc) != "TransactionCanceledException":
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


def code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
