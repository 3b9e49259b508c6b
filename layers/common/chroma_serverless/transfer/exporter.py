"""``export``: collections to a directory (local or S3) of one Parquet or JSONL file each plus
``manifest.json``.

Parquet columns: ``id`` string, ``embedding`` fixed-size float32 list, ``document`` and ``uri``
strings, and ``metadata``, a struct with one typed child per key (int64, float64, bool, string or
a list of one of those). A key whose values have several types across records is a string child
holding each value as JSON, marked in the field's metadata, so that nothing is lost. JSONL lines
hold the same fields; embeddings are written as float32 values print, which parse back exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import FileType

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.service.restore import point_at
from chroma_serverless.transfer import manifest
from chroma_serverless.transfer.columns import (
    DOCUMENT,
    EMBEDDING,
    ENCODING,
    ID,
    JSON,
    METADATA,
    URI,
)
from chroma_serverless.transfer.progress import progress
from chroma_serverless.wire.responses import json_default

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from chroma_serverless.domain.columns import ColumnBatch
    from chroma_serverless.transfer.endpoints import Endpoint
    from chroma_serverless.transfer.files import Format, Location
    from chroma_serverless.transfer.progress import Progress
    from chroma_serverless.types import Collection, Metadata


def export(
    endpoint: Endpoint,
    destination: Location,
    names: list[str] | None,
    format: Format,
    as_of: str | None = None,
) -> manifest.Manifest:
    """Export the collections ``names`` (default: every collection of the database), each at
    the version ``as_of`` names (default: the latest; see ``restore.point_at``), into a new or
    empty directory, or into an earlier export of the same database: its manifest then keeps
    the collections not exported again and has the entries of those exported again replaced.
    Any other directory is refused, so that an export never drops what a directory held."""
    earlier = _earlier(destination, endpoint)
    chosen = [endpoint.collection(n) for n in names] if names else endpoint.collections()
    destination.make_directory()
    entries = []
    for collection in chosen:
        version, total = None, None
        if as_of is not None:
            point = point_at(collection, endpoint.restore_points(collection), as_of)
            version, total = point.version, point.records
        file = f"{collection.name}.{format}"
        bar = progress(collection.name, total if total is not None else endpoint.count(collection))
        batches = endpoint.scan(collection, version)
        writer = write_parquet if format == "parquet" else write_jsonl
        records = writer(destination.child(file), _counted(batches, bar), collection)
        bar.close()
        entries.append(manifest.Entry(collection, file, records, version))
    exported_at = datetime.now(UTC).isoformat(timespec="seconds")
    document = manifest.Manifest(endpoint.tenant, endpoint.database, exported_at, entries)
    kept = manifest.merged(earlier, document) if earlier is not None else document
    manifest.write(destination, kept)
    for stale in _replaced_files(earlier, kept):
        destination.child(stale).delete()
    return document


def _earlier(destination: Location, endpoint: Endpoint) -> manifest.Manifest | None:
    """The export already in ``destination`` (``None``: it is new or empty); refuses a file,
    a directory holding anything else, and an export of another database."""
    found = destination.info()
    if found.type == FileType.File:
        raise InvalidArgumentError(f"{destination.uri} is a file; export into a directory")
    if not destination.child(manifest.NAME).exists():
        if found.type == FileType.Directory and not destination.is_empty():
            raise InvalidArgumentError(
                f"{destination.uri} is not empty and holds no export ({manifest.NAME}); "
                "export into a new or empty directory, or into an earlier export"
            )
        return None
    earlier = manifest.read(destination)
    if (earlier.tenant, earlier.database) != (endpoint.tenant, endpoint.database):
        raise InvalidArgumentError(
            f"{destination.uri} holds an export of database {earlier.database} of tenant "
            f"{earlier.tenant}, not of {endpoint.database} of {endpoint.tenant}; export into "
            "another directory"
        )
    return earlier


def _replaced_files(earlier: manifest.Manifest | None, kept: manifest.Manifest) -> set[str]:
    """Files of the earlier export that no entry names any more (a collection re-exported in
    the other format)."""
    if earlier is None:
        return set()
    return {e.file for e in earlier.entries} - {e.file for e in kept.entries}


def write_parquet(file: Location, batches: Iterable[ColumnBatch], collection: Collection) -> int:
    records, writer = 0, None
    with file.open_output() as stream:
        for batch in batches:
            table = parquet_table(batch)
            if writer is None:
                writer = pq.ParquetWriter(stream, table.schema, compression="zstd")
            writer.write_table(table)
            records += table.num_rows
        if writer is None:  # no records: the columns alone
            writer = pq.ParquetWriter(stream, _empty_schema(collection.dimension))
        writer.close()
    return records


def parquet_table(batch: ColumnBatch) -> pa.Table:
    columns = {
        ID: batch.ids,
        EMBEDDING: batch.embeddings,
        DOCUMENT: _or_nulls(batch.documents, len(batch)),
        URI: _or_nulls(batch.uris, len(batch)),
    }
    kinds_of: dict[str, list[str]] = {}
    for key, kind in batch.metadata:
        kinds_of.setdefault(key, []).append(kind)
    fields, children = [], []
    metadatas = batch.metadatas() if any(len(k) > 1 for k in kinds_of.values()) else []
    for key, kinds in kinds_of.items():
        if len(kinds) == 1:
            fields.append(pa.field(key, batch.metadata[(key, kinds[0])].type))
            children.append(batch.metadata[(key, kinds[0])])
        else:  # several types: each value as JSON text
            fields.append(pa.field(key, pa.string(), metadata={ENCODING: JSON}))
            children.append(_json_values(metadatas, key))
    if fields:
        columns[METADATA] = pa.StructArray.from_arrays(children, fields=fields)
    return pa.table(columns)


def write_jsonl(file: Location, batches: Iterable[ColumnBatch], collection: Collection) -> int:
    records = 0
    with file.open_output() as stream:
        for batch in batches:
            vectors = batch.vectors()
            documents = _or_nulls(batch.documents, len(batch)).to_pylist()
            uris = _or_nulls(batch.uris, len(batch)).to_pylist()
            lines = [
                _json(
                    {
                        ID: record_id,
                        EMBEDDING: vector,
                        DOCUMENT: document,
                        URI: uri,
                        METADATA: metadata,
                    },
                    newline=True,
                )
                for record_id, vector, document, uri, metadata in zip(
                    batch.ids.to_pylist(), vectors, documents, uris, batch.metadatas(), strict=True
                )
            ]
            stream.write(b"".join(lines))
            records += len(lines)
    return records


def _counted(batches: Iterable[ColumnBatch], bar: Progress) -> Iterator[ColumnBatch]:
    for batch in batches:
        yield batch
        bar.update(len(batch))


def _json_values(metadatas: list[Metadata | None], key: str) -> pa.Array:
    texts = [None if m is None or key not in m else _json(m[key]).decode() for m in metadatas]
    return pa.array(texts, pa.string())


def _json(value: object, newline: bool = False) -> bytes:
    """JSON with float32 arrays printed as float32 and sparse vectors in Chroma's tagged form."""
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS
    if newline:
        option |= orjson.OPT_APPEND_NEWLINE
    return orjson.dumps(value, default=json_default, option=option)


def _or_nulls(values: pa.Array | None, length: int) -> pa.Array:
    return pa.nulls(length, pa.string()) if values is None else values


def _empty_schema(dimension: int | None) -> pa.Schema:
    vector = pa.list_(pa.float32(), dimension) if dimension else pa.list_(pa.float32())
    return pa.schema(
        [(ID, pa.string()), (EMBEDDING, vector), (DOCUMENT, pa.string()), (URI, pa.string())]
    )
