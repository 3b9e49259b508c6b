"""A running server as a transfer endpoint, through its v2 API with a bearer token: writes are
upserts of at most the server's ``max_batch_size`` records (halved again on a 413), retried with
backoff on throttling, server errors and dropped connections."""

from __future__ import annotations

import base64
import random
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson
import pyarrow as pa

from chroma_serverless.domain import columns
from chroma_serverless.errors import (
    BatchSizeExceededError,
    ChromaError,
    InvalidArgumentError,
    NotFoundError,
    UniqueConstraintError,
)
from chroma_serverless.transfer.recreate import creation
from chroma_serverless.wire import responses

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chroma_serverless.domain.columns import ColumnBatch
    from chroma_serverless.types import Collection, Restored, RestorePoint

RETRIES = 6
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
PAGE = 1_000  # collections per list request
ERRORS: dict[int, type[ChromaError]] = {
    400: InvalidArgumentError,
    404: NotFoundError,
    409: UniqueConstraintError,
    413: BatchSizeExceededError,
}
INCLUDE = ["embeddings", "documents", "uris", "metadatas"]
# Pages of records read back: a float as JSON text takes up to ~12 bytes, and a record's id,
# document, uri and metadata are budgeted this much on top.
PAGE_BYTES, FLOAT_TEXT, RECORD_TEXT = 3_000_000, 12, 2048


class HttpEndpoint:
    def __init__(
        self, url: str, token: str | None, tenant: str, database: str, timeout: float = 300
    ) -> None:
        self.url, self.tenant, self.database = url.rstrip("/"), tenant, database
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url + "/api/v2", headers=headers, timeout=timeout)
        self._base = f"/tenants/{quote(tenant, safe='')}/databases/{quote(database, safe='')}"
        self._limit: int | None = None
        self._reached = False  # a refused connection before any answer: a wrong URL, no retry
        self._call("GET", self._base)  # NotFoundError (or an auth error) before any work

    @property
    def identity(self) -> str:
        return f"{self.url}/{self.tenant}/{self.database}"

    @property
    def batch_limit(self) -> int:
        if self._limit is None:
            self._limit = int(self._call("GET", "/pre-flight-checks")["max_batch_size"])
        return self._limit

    def collection(self, name: str) -> Collection:
        return responses.collection_from(self._call("GET", f"{self._base}/collections/{name}"))

    def create_collection(self, name: str, like: Collection | None) -> tuple[Collection, bool]:
        plan = creation(like)
        body = {"name": name, "metadata": plan.metadata, "schema": plan.schema}
        try:
            made = responses.collection_from(self._call("POST", f"{self._base}/collections", body))
        except UniqueConstraintError:
            return self.collection(name), False
        if plan.then_metadata is not None:
            update = {"new_metadata": plan.then_metadata}
            self._call("PUT", f"{self._base}/collections/{made.id}", update)
            made = self.collection(name)
        return made, True

    def drop(self, collection: Collection) -> None:
        self._call("DELETE", f"{self._base}/collections/{collection.name}")

    def collections(self) -> list[Collection]:
        found: list[Collection] = []
        while page := self._call(
            "GET", f"{self._base}/collections?limit={PAGE}&offset={len(found)}"
        ):
            found.extend(responses.collection_from(c) for c in page)
        return found

    def upsert(self, collection: Collection, batch: ColumnBatch) -> Collection:
        """Records with vectors and records to embed go in separate requests (the API takes no
        mixed batch); each part in requests of at most the server's batch size."""
        missing = batch.missing_vectors()
        with_vectors = np.setdiff1d(np.arange(len(batch)), missing)
        for rows in (with_vectors, missing):
            for start in range(0, len(rows), self.batch_limit):
                self._upsert(collection, batch.take(rows[start : start + self.batch_limit]))
        if collection.dimension is None:
            return self.collection(collection.name)
        return collection

    def _upsert(self, collection: Collection, batch: ColumnBatch) -> None:
        try:
            self._call("POST", self._records(collection, "upsert"), _upsert_body(batch))
        except BatchSizeExceededError:  # the body is over the server's limit: halve it
            if len(batch) == 1:
                raise
            half = len(batch) // 2
            self._upsert(collection, batch.take(np.arange(half)))
            self._upsert(collection, batch.take(np.arange(half, len(batch))))

    def count(self, collection: Collection) -> int:
        return int(self._call("GET", self._records(collection, "count")))

    def scan(
        self, collection: Collection, version: int | None = None, rows: int = 1_000
    ) -> Iterator[ColumnBatch]:
        """Pages of ``get`` in insertion order, each answer well under Lambda's 6 MB. Reading
        while others write may skip or repeat records; an export from storage reads one
        version."""
        if version is not None:
            raise InvalidArgumentError("Export at an earlier version needs access to storage")
        per_record = (collection.dimension or 0) * FLOAT_TEXT + RECORD_TEXT
        rows = max(1, min(rows, PAGE_BYTES // per_record))
        kinds: dict[tuple[str, str], pa.DataType] = {}
        for page in self._pages(collection, rows, ["metadatas"]):
            for column in columns.metadata_columns(page["metadatas"]):
                kinds.setdefault(column, columns.KIND_TYPES[column[1]])
        for page in self._pages(collection, rows, INCLUDE):
            found = columns.metadata_columns(page["metadatas"])
            metadata = {  # every page with the same columns, in the same order
                column: found.get(column, pa.nulls(len(page["ids"]), kinds[column]))
                for column in kinds
            }
            yield columns.ColumnBatch(
                pa.array(page["ids"], pa.string()),
                columns.vectors_of(page["embeddings"]),
                pa.array(page["documents"], pa.string()),
                pa.array(page["uris"], pa.string()),
                metadata,
            )

    def _pages(self, collection: Collection, rows: int, include: list[str]) -> Iterator[Any]:
        offset = 0
        while True:
            body = {"limit": rows, "offset": offset, "include": include}
            page = self._call("POST", self._records(collection, "get"), body)
            if not page["ids"]:
                return
            yield page
            offset += len(page["ids"])

    def imported(self, collection: Collection) -> dict[str, Any]:
        return {"collection": collection.id, "maintenance": "left to the server"}

    def restore_points(self, collection: Collection) -> list[RestorePoint]:
        found = self._call("GET", self._records(collection, "versions"))
        return [responses.restore_point_from(point) for point in found]

    def restore(self, collection: Collection, to: str, new_name: str | None) -> Restored:
        body = {"to": to, "new_name": new_name}
        return responses.restored_from(
            self._call("POST", self._records(collection, "restore"), body)
        )

    def close(self) -> None:
        self._http.close()

    def _records(self, collection: Collection, action: str) -> str:
        return f"{self._base}/collections/{collection.id}/{action}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS
        content = (
            None
            if body is None
            else orjson.dumps(body, default=responses.json_default, option=option)
        )
        for attempt in range(RETRIES):
            try:
                response = self._http.request(method, path, content=content)
            except httpx.ConnectError:
                if attempt == RETRIES - 1 or not self._reached:
                    raise
            except httpx.TransportError:
                if attempt == RETRIES - 1:
                    raise
            else:
                self._reached = True
                if response.status_code not in RETRY_STATUS or attempt == RETRIES - 1:
                    return _answer(response)
            time.sleep(random.uniform(0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")


def _answer(response: httpx.Response) -> Any:
    if response.is_success:
        return orjson.loads(response.content)
    try:
        message = orjson.loads(response.content)["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = response.text or response.reason_phrase
    error = ERRORS.get(response.status_code, ChromaError)(message)
    error.status_code = response.status_code
    raise error


def _upsert_body(batch: ColumnBatch) -> dict[str, Any]:
    body: dict[str, Any] = {"ids": batch.ids.to_pylist()}
    if batch.embeddings is not None and batch.embeddings.null_count == 0:
        vectors = batch.vectors().astype("<f4")
        body["embeddings"] = [base64.b64encode(row.tobytes()).decode() for row in vectors]
    if batch.documents is not None:
        body["documents"] = batch.documents.to_pylist()
    if batch.uris is not None:
        body["uris"] = batch.uris.to_pylist()
    if batch.metadata:
        body["metadatas"] = batch.metadatas()
    return body
