"""How to create a collection exactly like an exported one (its metadata, configuration and
schema, bit for bit) through the create call every endpoint has.

An export holds a collection's metadata and its schema (the configuration derives from the
schema). Sent back together they can clash: legacy ``hnsw:*`` metadata keys configure the vector
index too, and Chroma refuses a create that sets both a non-default configuration and a
schema. Then the collection is created from its schema with the metadata less those keys, and
its whole metadata set afterwards (a metadata update changes no configuration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chroma_serverless.domain.schema import indexes, validation
from chroma_serverless.domain.schema.configuration import internal_configuration
from chroma_serverless.errors import ChromaError

if TYPE_CHECKING:
    from chroma_serverless.types import Collection, Metadata

LEGACY_PREFIX = "hnsw:"


@dataclass(frozen=True)
class Creation:
    metadata: Metadata | None  # sent with the create
    schema: dict[str, object] | None
    then_metadata: Metadata | None = None  # set right after the create (``None``: nothing)


def creation(like: Collection | None) -> Creation:
    """The create request (and metadata update) that gives a collection like ``like``."""
    if like is None:
        return Creation(None, None)
    if like.schema is None or _gives(like.metadata, like.schema):
        return Creation(like.metadata, like.schema)
    plain = {k: v for k, v in (like.metadata or {}).items() if not k.startswith(LEGACY_PREFIX)}
    return Creation(plain or None, like.schema, like.metadata)


def _gives(metadata: Metadata | None, schema: dict[str, object]) -> bool:
    """Whether a create with ``metadata`` and ``schema`` stores ``schema`` as it is."""
    try:
        made = indexes.reconcile(validation.parse(schema), internal_configuration(None, metadata))
    except ChromaError:
        return False
    return bool(made == schema)
