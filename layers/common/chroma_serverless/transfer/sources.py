"""Input files read as column batches from any row on, so an import can resume where it stopped.

A row is a Parquet or CSV row or a non-blank JSONL line; chunks hold at most ``rows`` of them.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.transfer.columns import Columns
from chroma_serverless.transfer.files import COMPRESSED

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chroma_serverless.domain.columns import ColumnBatch
    from chroma_serverless.transfer.columns import ColumnMap
    from chroma_serverless.transfer.files import SourceFile

TEXT_BUFFER = 1 << 20
CSV_BLOCK = 4 << 20


@dataclass(frozen=True)
class Chunk:
    rows: int  # rows of the file this chunk covers
    batch: ColumnBatch


def rows_in(source: SourceFile) -> int | None:
    """How many rows the file holds: Parquet says so in its footer; text files are counted when
    local and uncompressed (a CSV field with a line break makes that an estimate)."""
    if source.format == "parquet":
        with source.location.open_random() as file:
            try:
                return int(pq.ParquetFile(file).metadata.num_rows)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidArgumentError(
                    f"{source.location.uri} is not a Parquet file: {exc}"
                ) from exc
    if source.location.uri.startswith("s3://") or source.location.path.endswith(COMPRESSED):
        return None
    with open(source.location.path, "rb") as file:
        lines = sum(1 for line in file if line.strip())
    return max(0, lines - 1) if source.format == "csv" else lines


def read(source: SourceFile, columns: ColumnMap, start: int, rows: int) -> Iterator[Chunk]:
    """The file's records from row ``start`` on, ``rows`` at a time."""
    readers = {"parquet": _parquet, "jsonl": _jsonl, "csv": _csv}
    try:
        yield from readers[source.format](source, columns, start, rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, orjson.JSONDecodeError) as exc:
        raise InvalidArgumentError(f"{source.location.uri}: {exc}") from exc


def _parquet(source: SourceFile, columns: ColumnMap, start: int, rows: int) -> Iterator[Chunk]:
    with source.location.open_random() as file:
        parquet = pq.ParquetFile(file)
        resolved = columns.resolve(parquet.schema_arrow.names)
        first, skip = 0, start
        groups = list(range(parquet.num_row_groups))
        while first < len(groups) and skip >= parquet.metadata.row_group(first).num_rows:
            skip -= parquet.metadata.row_group(first).num_rows
            first += 1
        batches = parquet.iter_batches(
            batch_size=rows, row_groups=groups[first:], columns=resolved.names
        )
        for batch in batches:
            if skip:
                batch, skip = batch.slice(min(skip, batch.num_rows)), max(0, skip - batch.num_rows)
            if batch.num_rows:
                yield Chunk(batch.num_rows, resolved.from_table(batch))


def _jsonl(source: SourceFile, columns: ColumnMap, start: int, rows: int) -> Iterator[Chunk]:
    resolved = Columns.for_rows(columns)
    with source.location.open_stream() as stream:
        lines = (line for line in io.BufferedReader(stream, TEXT_BUFFER) if line.strip())
        number = start
        for chunk in _batched(itertools.islice(lines, start, None), rows):
            objects = [_object(line, source, number + i) for i, line in enumerate(chunk)]
            if number == start:  # a field named on the command line must be in the file
                _named_fields(columns, objects, source)
            number += len(chunk)
            yield Chunk(len(chunk), resolved.from_rows(objects))


def _named_fields(columns: ColumnMap, objects: list[dict[str, Any]], source: SourceFile) -> None:
    """JSON records name their fields one by one: a field named explicitly that none of the
    first chunk's records holds is taken for a typo rather than silently ignored."""
    seen = {key for record in objects for key in record}
    for name in columns.named:
        if name not in seen:
            raise InvalidArgumentError(
                f"No field {name!r} in the records of {source.location.uri} (the first "
                f"{len(objects):,} hold {', '.join(sorted(seen)[:20])})"
            )


def _object(line: bytes, source: SourceFile, row: int) -> dict[str, Any]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgumentError(f"{source.location.uri} record {row + 1}: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            f"{source.location.uri} record {row + 1}: expected a JSON object, got {value!r:.80}"
        )
    return value


def _csv(source: SourceFile, columns: ColumnMap, start: int, rows: int) -> Iterator[Chunk]:
    with source.location.open_stream() as stream:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
        resolved = columns.resolve(reader.schema.names)
        pending: list[pa.RecordBatch] = []
        skip = start
        for batch in reader:
            if skip:
                batch, skip = batch.slice(min(skip, batch.num_rows)), max(0, skip - batch.num_rows)
            pending.append(batch)
            while sum(b.num_rows for b in pending) >= rows:
                table = pa.Table.from_batches(pending)
                pending = table.slice(rows).to_batches()
                yield Chunk(rows, resolved.from_table(table.slice(0, rows)))
        table = pa.Table.from_batches(pending, schema=reader.schema)
        if table.num_rows:
            yield Chunk(table.num_rows, resolved.from_table(table))


def _batched(lines: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    while chunk := list(itertools.islice(lines, size)):
        yield chunk
