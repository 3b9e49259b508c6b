"""The AWS credentials: API tokens and Basic users in the catalog's DynamoDB table (key
layout: ``keys.py``). A presented token is found with one GetItem on its hash, a Basic user with
one on its username; neither a token's secret nor a password is ever stored (a user's item holds
a salted scrypt hash)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chroma_serverless.catalog.dynamodb.keys import EXISTS, NOT_EXISTS, basic_key, token_key
from chroma_serverless.catalog.dynamodb.table import Table, code
from chroma_serverless.errors import NotFoundError, UniqueConstraintError
from chroma_serverless.types import BasicCredential, Principal, Token


class DynamoDbCredentials(Table):
    """:class:`~chroma_serverless.ports.Credentials` in the catalog's table."""

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
            if code(exc) == "ConditionalCheckFailedException":
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
            if code(exc) == "ConditionalCheckFailedException":
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
            if code(exc) == "ConditionalCheckFailedException":
                raise NotFoundError(f"User [{username}] does not exist") from exc
            raise
        return _basic_credential(response["Attributes"])


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
