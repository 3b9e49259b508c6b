"""How a collection's records are laid out as columns of one LanceDB table.

Fixed columns: ``id`` (non-null string, the table's primary key), ``seq`` (insertion order),
``embedding`` (fixed-size float32 list), ``document`` and ``uri`` (nullable strings), ``written``
(when the row was last written).

Metadata uses **one typed column per (key, value type)**: ``ms_<key>`` string, ``mi_<key>`` int64,
``mf_<key>`` float64, ``mb_<key>`` bool, ``msa_``/``mia_``/``mfa_``/``mba_`` for arrays of those and
``msv_<key>`` for sparse vectors (a struct of u32 indices, f32 values and optional tokens).
A record holds a value in at most one column per key; every other column of that key is NULL.
Measured on LanceDB 0.40 (docs/storage-format.md), typed columns filter 10-40x faster than
a JSON column, can carry scalar indexes, and give Chroma's typing for free: int and float compare
numerically across ``mi_``/``mf_``, while bools and strings live apart and never equal a number.
Adding a column is a metadata-only change, so a new key costs a few milliseconds once.

Column names may not contain ``.`` and SQL identifiers are case-folded unless quoted, so a key is
encoded: ASCII letters and digits stay as they are, every other UTF-8 byte becomes ``_XX`` (hex).
The mapping is injective, readable for ordinary keys and safe inside backtick quotes.
"""

from __future__ import annotations

import re

ID = "id"
EMBEDDING = "embedding"
DOCUMENT = "document"
URI = "uri"
# Insertion sequence: set when a record is first inserted and kept by updates, so ``get`` can
# return records in insertion order (as Chroma does) although an update rewrites the row at the
# end of the table.
SEQ = "seq"
# When the row was last written (ns since the epoch, taken as the write starts): lets a reader of
# an index built from an earlier table version find the rows written since (records/sparse.py).
WRITTEN = "written"
DISTANCE = "_distance"

_PLAIN = re.compile(rb"[A-Za-z0-9]")
_COLUMN = re.compile(r"m(s|i|f|b|sa|ia|fa|ba|sv)_([A-Za-z0-9_]*)\Z")
_ESCAPE = re.compile(rb"_([0-9A-F]{2})")


def encode_key(key: str) -> str:
    return "".join(
        chr(byte) if _PLAIN.match(bytes([byte])) else f"_{byte:02X}" for byte in key.encode()
    )


def decode_key(encoded: str) -> str:
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), encoded.encode()).decode()


def metadata_column(key: str, kind: str) -> str:
    return f"m{kind}_{encode_key(key)}"


def parse_metadata_column(name: str) -> tuple[str, str] | None:
    """``(key, kind)`` for a metadata column name, ``None`` for any other column."""
    match = _COLUMN.match(name)
    if match is None:
        return None
    return decode_key(match.group(2)), match.group(1)
