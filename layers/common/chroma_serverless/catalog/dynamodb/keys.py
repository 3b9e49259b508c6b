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
=============================  ==========================  ====================================
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


# Items a reset keeps: credentials are not data (an admin's reset must not lock everyone out).
CREDENTIAL_PREFIXES = ("TOKEN#", "BASIC#")
