"""An independent, pure-Python model of Chroma's ``where`` / ``where_document`` semantics.

Written from the observed semantics of Chroma 1.5.9 (shared/docs/chroma-contract.md §3.3-3.4,
shared/docs/lancedb-facts.md §2), never by calling :mod:`chroma_serverless.domain.filters`:

- ``{"k": scalar}`` is ``{"k": {"$eq": scalar}}``; ``$and``/``$or`` combine where dicts.
- Equality, ``$in`` and ordering compare int and float numerically (``2 == 2.0``, ``1 < 1.5``);
  a bool equals only a bool and never orders; a string equals only a string and never orders.
  When a stored float meets an int operand the operand is read as a float64 first (so stored
  ``2.0**53`` equals ``2**53 + 1``), exactly as Chroma's Rust server does; a stored int meets a
  float operand exactly (stored ``2**53 + 1`` does not equal ``2.0**53``).
- A scalar operator never matches an array value; ``$contains`` is type-exact membership in an
  array value (``1`` is not in ``[1.0]``, ``True`` is not in ``[1]``) and never matches a scalar.
- ``$ne``, ``$nin``, ``$not_contains`` and ``$not_regex`` are the plain negations of ``$eq``,
  ``$in``, ``$contains`` and ``$regex``: they also match records lacking the key, lacking metadata
  or lacking a document.
- On key ``#document`` (in ``where``) and in ``where_document``, ``$contains`` is a case-sensitive
  substring test and ``$regex`` a search (``re.search``) on the document.
- ``#id`` (the Search API's filters) tests the record's id: ``$eq``/``$in`` hold it, ``$ne``/
  ``$nin`` do not.
- ids, where and where_document together select the intersection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

DOCUMENT_KEY = "#document"
ID_KEY = "#id"
NEGATIONS = {"$ne": "$eq", "$nin": "$in", "$not_contains": "$contains", "$not_regex": "$regex"}
ORDERINGS = ("$gt", "$gte", "$lt", "$lte")


@dataclass(frozen=True)
class Record:
    id: str
    metadata: dict[str, Any] | None
    document: str | None


class _Missing:
    """The value of a key the record does not hold."""


MISSING = _Missing()


def matches(
    record: Record,
    where: dict[str, Any] | None = None,
    where_document: dict[str, Any] | None = None,
    ids: Sequence[str] | None = None,
) -> bool:
    """Whether ``record`` is selected by the filter (``None`` parts select everything)."""
    if ids is not None and record.id not in ids:
        return False
    if where is not None and not _where(record, where):
        return False
    return where_document is None or _where_document(record.document, where_document)


def select(
    records: Iterable[Record],
    where: dict[str, Any] | None = None,
    where_document: dict[str, Any] | None = None,
    ids: Sequence[str] | None = None,
) -> set[str]:
    """Ids of the records the filter selects."""
    return {r.id for r in records if matches(r, where, where_document, ids)}


# --------------------------------------------------------------------------- where


def _where(record: Record, where: dict[str, Any]) -> bool:
    ((key, value),) = where.items()
    if key == "$and":
        return all(_where(record, child) for child in value)
    if key == "$or":
        return any(_where(record, child) for child in value)
    if isinstance(value, dict):
        ((operator, operand),) = value.items()
    else:
        operator, operand = "$eq", value
    if key == DOCUMENT_KEY:
        return _document(record.document, operator, operand)
    if key == ID_KEY:
        held = record.id in (operand if isinstance(operand, list) else [operand])
        return not held if operator in NEGATIONS else held
    metadata = record.metadata or {}
    stored = metadata.get(key, MISSING)
    if operator in NEGATIONS:
        return not _field(stored, NEGATIONS[operator], operand)
    return _field(stored, operator, operand)


def _field(stored: object, operator: str, operand: Any) -> bool:
    if stored is MISSING:
        return False
    if operator == "$eq":
        return _equal(stored, operand)
    if operator == "$in":
        return any(_equal(stored, item) for item in operand)
    if operator == "$contains":
        return isinstance(stored, list) and any(_same(item, operand) for item in stored)
    if operator in ORDERINGS:
        if not (_is_number(stored) and _is_number(operand)):
            return False
        order = _compare(stored, operand)
        return {
            "$gt": order > 0,
            "$gte": order >= 0,
            "$lt": order < 0,
            "$lte": order <= 0,
        }[operator]
    raise AssertionError(f"oracle: unknown operator {operator}")


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: object, b: object) -> bool:
    """Type-exact equality, as array membership is."""
    return type(a) is type(b) and a == b


def _equal(stored: object, operand: object) -> bool:
    """Scalar equality across int and float; bools and strings only equal their own type."""
    if isinstance(stored, list):
        return False
    if _is_number(stored) and _is_number(operand):
        return _compare(stored, operand) == 0
    return _same(stored, operand)


def _compare(stored: int | float, operand: int | float) -> int:
    """-1, 0 or 1. A stored float meets an int operand as float64; otherwise exact."""
    if isinstance(stored, float) and isinstance(operand, int):
        operand = float(operand)
    return (stored > operand) - (stored < operand)


# --------------------------------------------------------------------------- documents


def _where_document(document: str | None, where_document: dict[str, Any]) -> bool:
    ((operator, operand),) = where_document.items()
    if operator == "$and":
        return all(_where_document(document, child) for child in operand)
    if operator == "$or":
        return any(_where_document(document, child) for child in operand)
    return _document(document, operator, operand)


def _document(document: str | None, operator: str, operand: str) -> bool:
    if operator in NEGATIONS:
        return not _document(document, NEGATIONS[operator], operand)
    if document is None:
        return False
    if operator == "$contains":
        return operand in document
    if operator == "$regex":
        return re.search(operand, document) is not None
    raise AssertionError(f"oracle: unknown document operator {operator}")
