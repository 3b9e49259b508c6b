"""Request bodies with Chroma's field names, and their conversion to validated domain values."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from chroma_serverless.domain import checks
from chroma_serverless.domain.filters import validate_where, validate_where_document
from chroma_serverless.domain.metadata import validate_metadata
from chroma_serverless.errors import (
    BatchSizeExceededError,
    InvalidArgumentError,
)
from chroma_serverless.search.parse import parse
from chroma_serverless.types import (
    DeleteRequest,
    Filter,
    GetRequest,
    Include,
    QueryRequest,
    RecordBatch,
    Vectors,
)

if TYPE_CHECKING:
    from chroma_serverless.search.model import Search

Embedding = list[float] | str


class Body(BaseModel):
    # Unknown keys are ignored, as Chroma's server does.
    model_config = ConfigDict(extra="ignore")


class CreateTenant(Body):
    name: str


class CreateDatabase(Body):
    name: str


class CreateCollection(Body):
    name: str
    metadata: dict[str, Any] | None = None
    configuration: dict[str, Any] | None = None
    # ``schema`` would shadow pydantic's BaseModel.schema(); the wire name is kept by the alias.
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    get_or_create: bool = False


class UpdateCollection(Body):
    new_name: str | None = None
    new_metadata: dict[str, Any] | None = None
    new_configuration: dict[str, Any] | None = None


class ForkCollection(Body):
    new_name: str


class RestoreCollection(Body):
    to: int | str  # a version, or an ISO-8601 time (restore.point_at)
    new_name: str | None = None  # restore as a new collection instead of in place


class Records(Body):
    ids: list[str]
    embeddings: list[Embedding | None] | None = None
    metadatas: list[dict[str, Any] | None] | None = None
    documents: list[str | None] | None = None
    uris: list[str | None] | None = None

    def batch(self, max_batch_size: int, merge_metadata: bool) -> RecordBatch:
        """Validate the columns; ``merge_metadata`` (update/upsert) admits ``None`` values."""
        if not self.ids:
            raise InvalidArgumentError("Expected IDs to be a non-empty list, got 0 IDs")
        if not all(self.ids):
            raise InvalidArgumentError("Empty ID, ID must have at least one character")
        lengths = {
            len(c)
            for c in (self.embeddings, self.metadatas, self.documents, self.uris)
            if c is not None
        }
        if lengths - {len(self.ids)}:
            raise InvalidArgumentError(
                "Inconsistent number of IDs, embeddings, documents, URIs and metadatas"
            )
        if len(self.ids) > max_batch_size:
            raise BatchSizeExceededError(
                f"Batch size {len(self.ids)} exceeds maximum batch size {max_batch_size}"
            )
        checks.check_unique(self.ids)
        metadatas = None
        if self.metadatas is not None:
            metadatas = [
                validate_metadata(m, allow_none=merge_metadata, sparse=True) for m in self.metadatas
            ]
        return RecordBatch(
            ids=self.ids,
            embeddings=_batch_vectors(self.embeddings),
            metadatas=metadatas,
            documents=self.documents,
            uris=self.uris,
        )


class FilterBody(Body):
    ids: list[str] | None = None
    where: dict[str, Any] | None = None
    where_document: dict[str, Any] | None = None

    def filter(self) -> Filter:
        if self.where is not None:
            validate_where(self.where)
        if self.where_document is not None:
            validate_where_document(self.where_document)
        return Filter(self.ids, self.where or None, self.where_document or None)


class GetRecords(FilterBody):
    limit: int | None = None
    offset: int | None = None
    include: list[Include] = ["documents", "metadatas"]

    def request(self) -> GetRequest:
        if "distances" in self.include:
            raise InvalidArgumentError("Expected include to not contain distances for get")
        checks.page(self.limit, self.offset)
        return GetRequest(self.filter(), self.limit, self.offset or 0, tuple(self.include))


class QueryRecords(FilterBody):
    query_embeddings: list[Embedding] | None = None
    query_texts: list[str] | None = None
    n_results: int = 10
    include: list[Include] = ["documents", "metadatas", "distances"]

    def request(self) -> QueryRequest:
        checks.count(self.n_results, "n_results", minimum=1)
        if (self.query_embeddings is None) == (self.query_texts is None):
            raise InvalidArgumentError("Expected exactly one of query_embeddings or query_texts")
        embeddings = vectors(self.query_embeddings) if self.query_embeddings else _no_vectors()
        return QueryRequest(
            embeddings, self.n_results, self.filter(), tuple(self.include), self.query_texts
        )


class DeleteRecords(FilterBody):
    limit: int | None = None

    def request(self) -> DeleteRequest:
        if self.ids is None and self.where is None and self.where_document is None:
            raise InvalidArgumentError(
                "At least one of ids, where, or where_document must be provided in delete"
            )
        checks.count(self.limit, "limit")
        return DeleteRequest(self.filter(), self.limit)


class SearchRecords(Body):
    searches: list[Any]
    # Every read sees every acknowledged write, so all levels read the same.
    read_level: Literal["index_and_wal", "index_only", "index_and_bounded_wal"] = "index_and_wal"

    def request(self) -> list[Search]:
        return [parse(search, i) for i, search in enumerate(self.searches)]


def _batch_vectors(embeddings: list[Embedding | None] | None) -> Vectors | None:
    """Every row's vector, or ``None`` when no row has one (the server embeds the documents)."""
    if embeddings is None or all(e is None for e in embeddings):
        return None
    if any(e is None for e in embeddings):
        raise InvalidArgumentError(
            "Mixed batches are not supported: send an embedding for every record or for none "
            "(then the server embeds the documents)"
        )
    return vectors([e for e in embeddings if e is not None])


def vectors(embeddings: list[Embedding]) -> Vectors:
    """Float lists or base64 little-endian float32 strings, as one ``[n, d]`` float32 array."""
    rows = [_decode(e) if isinstance(e, str) else e for e in embeddings]
    dimensions = {len(row) for row in rows}
    if len(dimensions) != 1:
        raise InvalidArgumentError(
            f"Expected all embeddings to have the same dimension, got {sorted(dimensions)}"
        )
    if 0 in dimensions:
        raise InvalidArgumentError("Expected embeddings to be non-empty")
    array = np.asarray(rows, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InvalidArgumentError("Expected embeddings to contain only finite numbers")
    return array


def _decode(encoded: str) -> Vectors:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgumentError(f"Invalid base64 embedding: {exc}") from exc
    if len(raw) % 4:
        raise InvalidArgumentError("Invalid base64 embedding: length is not a multiple of 4")
    return np.frombuffer(raw, dtype="<f4")


def _no_vectors() -> Vectors:
    return np.zeros((0, 0), dtype=np.float32)
