"""What made each version of a table, in plain words, read from the transaction Lance commits
with it (LanceDB's ``list_versions`` reports only times and row counts).

A version's manifest (``_versions/*.manifest``: a protobuf ``Manifest`` at the offset its last
16 bytes give) names its transaction file (field 12, ``_transactions/*.txn``), a protobuf
``Transaction`` whose operation is the field numbered 100 and up. Both are read with the few
lines of protobuf wire format below; the field numbers are lance 13's (``transaction.proto``,
``table.proto``), checked against what this package commits by ``tests/e2e/test_restore.py``.
Anything unexpected reads as ``None``: the label is a help, never a reason for listing versions
to fail.

What our writes commit: a fold of the write log commits its deletes (``delete``) and then its
adds, upserts and updates as one merge (``write``), so one fold may make two versions; an
import's new records are a merge too; maintenance commits compactions and index builds; a
restore commits a ``restore``. The label names the engine's operation, not the log entries a
fold gathered.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from chroma_serverless.records.versions import manifest

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow.fs as pafs

TRANSACTION_FILE = 12  # Manifest.transaction_file
RESTORE_VERSION = 1  # Restore.version
OPERATIONS = {
    100: "add",
    101: "delete",
    102: "create (or overwrite)",
    103: "index build",
    104: "compaction",
    105: "new metadata columns",
    106: "restore",
    107: "compaction (fragment ids reserved)",
    108: "write (add, upsert or update)",
    109: "columns removed",
    110: "configuration change",
    111: "data replacement",
    113: "clone (fork)",
}
READERS = 8


def made_by(fs: pafs.FileSystem, table: str, versions: list[int]) -> dict[int, str | None]:
    """The operation that made each of ``versions`` of the table at path ``table``."""
    with ThreadPoolExecutor(READERS, thread_name_prefix="version-operation") as pool:
        return dict(zip(versions, pool.map(lambda v: _made(fs, table, v), versions), strict=True))


def _made(fs: pafs.FileSystem, table: str, version: int) -> str | None:
    try:
        data = _read(fs, f"{table}/_versions/{manifest(version)}")
        position = struct.unpack("<Q", data[-16:-8])[0]
        length = struct.unpack("<I", data[position : position + 4])[0]
        fields = dict(_fields(data[position + 4 : position + 4 + length]))
        name = fields.get(TRANSACTION_FILE)
        if not isinstance(name, bytes):
            return None
        transaction = _read(fs, f"{table}/_transactions/{name.decode()}")
        for number, value in _fields(transaction):
            if number == 106 and isinstance(value, bytes):
                restored = dict(_fields(value)).get(RESTORE_VERSION)
                if isinstance(restored, int):
                    return f"restore of version {restored}"
                return "restore"
            if number in OPERATIONS:
                return OPERATIONS[number]
    except (OSError, ValueError, IndexError, struct.error, UnicodeDecodeError):
        return None
    return None


def _read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read())


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a protobuf message: varints as ints, length-delimited
    fields as bytes (fixed-width ones skipped)."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, value
        elif wire == 2:
            length, at = _varint(data, at)
            yield number, data[at : at + length]
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {wire}")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at
