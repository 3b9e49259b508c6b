"""Write-log entries: one acknowledged write (add, upsert, update, or a delete by ids) as
bytes, and back.

An entry is a JSON header (the operation, the ids, the documents, uris and metadata as sent,
the writer's clock for the new records' insertion order, the vectors' shape) followed by the
vectors as little-endian float32. Metadata values keep their types exactly: sparse vectors are
tagged as Chroma tags them on the wire, ``None`` (remove the key, on update and upsert) stays.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import orjson

from chroma_serverless.types import RecordBatch, SparseVector

if TYPE_CHECKING:
    from chroma_serverless.types import UpdateMetadata

Operation = Literal["add", "upsert", "update", "delete"]
OPERATIONS: tuple[Operation, ...] = ("add", "upsert", "update", "delete")
_HEADER = struct.Struct("<I")
_SPARSE = "sparse_vector"


@dataclass(frozen=True)
class Entry:
    """One write: ``batch`` holds only ids for a delete; ``clock`` (ns) orders the records
    it inserts after those inserted before (the ``i``-th at ``clock + i``)."""

    operation: Operation
    batch: RecordBatch
    clock: int


def encode(entry: Entry) -> bytes:
    batch = entry.batch
    vectors = None if batch.embeddings is None else np.ascontiguousarray(batch.embeddings, "<f4")
    header = {
        "op": entry.operation,
        "clock": entry.clock,
        "ids": batch.ids,
        "documents": batch.documents,
        "uris": batch.uris,
        "metadatas": None if batch.metadatas is None else [_tagged(m) for m in batch.metadatas],
        "shape": None if vectors is None else list(vectors.shape),
    }
    head = orjson.dumps(header)
    return _HEADER.pack(len(head)) + head + (b"" if vectors is None else vectors.tobytes())


def decode(data: bytes) -> Entry:
    (size,) = _HEADER.unpack_from(data)
    header = orjson.loads(data[_HEADER.size : _HEADER.size + size])
    shape = header["shape"]
    embeddings = None
    if shape is not None:
        flat = np.frombuffer(data, dtype="<f4", offset=_HEADER.size + size)
        embeddings = flat.astype(np.float32, copy=False).reshape(shape)
    metadatas = header["metadatas"]
    batch = RecordBatch(
        ids=header["ids"],
        embeddings=embeddings,
        metadatas=None if metadatas is None else [_untagged(m) for m in metadatas],
        documents=header["documents"],
        uris=header["uris"],
    )
    operation = header["op"]
    if operation not in OPERATIONS:
        raise ValueError(f"unknown log entry operation {operation!r}")
    return Entry(operation, batch, int(header["clock"]))


def _tagged(metadata: UpdateMetadata | None) -> dict[str, Any] | None:
    if metadata is None:
        return None
    return {
        key: {
            "#type": _SPARSE,
            "indices": list(value.indices),
            "values": list(value.values),
            "tokens": None if value.tokens is None else list(value.tokens),
        }
        if isinstance(value, SparseVector)
        else value
        for key, value in metadata.items()
    }


def _untagged(metadata: dict[str, Any] | None) -> UpdateMetadata | None:
    if metadata is None:
        return None
    return {
        key: SparseVector(
            tuple(value["indices"]),
            tuple(value["values"]),
            None if value["tokens"] is None else tuple(value["tokens"]),
        )
        if isinstance(value, dict)
        else value
        for key, value in metadata.items()
    }
