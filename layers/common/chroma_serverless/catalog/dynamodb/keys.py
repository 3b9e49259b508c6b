"""The catalog's DynamoDB key layout (one table, ``pk`` hash key and ``sk`` range key, both
strings; the same comment sits beside the table in template.yaml):

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
a collection's write log       ``LOG#<collection id>``     ``STATE``
a write-log entry              ``LOG#<collection id>``     ``ENTRY#<seq, 20 digits>``
=============================  ==========================  ====================================

The log's state item holds the numbers ``head`` and ``folded``, the table ``version`` and the
lease (``holder``, ``held_until``); an entry item holds its bytes (``body``) or the key of the S3
object holding them (``s3key``), or is the ``abandoned`` marker of a number never stored
(``catalog/dynamodb/log.py``). Zero-padded numbers sort as numbers, so a range of entries is one
Query.
"""

from __future__ import annotations

from typing import Any

KEY_SCHEMA = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
ATTRIBUTES = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "S"},
]
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


LOG_PREFIX = "LOG#"
ENTRY_PREFIX = "ENTRY#"


def log_state_key(collection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{LOG_PREFIX}{collection_id}"}, "sk": {"S": "STATE"}}


def log_entry_key(collection_id: str, seq: int) -> dict[str, Any]:
    return {"pk": {"S": f"{LOG_PREFIX}{collection_id}"}, "sk": {"S": entry_sk(seq)}}


def entry_sk(seq: int) -> str:
    return f"{ENTRY_PREFIX}{seq:020d}"


# Items a reset keeps: credentials are not data (an admin's reset must not lock everyone out).
CREDENTIAL_PREFIXES = ("TOKEN#", "BASIC#")
