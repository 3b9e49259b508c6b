"""Chroma filters evaluated over a table held in memory: one boolean per row.

The same semantics as the SQL that :func:`chroma_serverless.filters.to_sql` gives LanceDB, for
the typed-column layout: a positive predicate is false where the value is missing, a negation
(``$ne``, ``$nin``, ``$not_contains``, ``$not_regex``) is its complement, ``$and``/``$or``
combine. (SQL's NULLs only ever reach ``IS NOT TRUE`` or monotone ``AND``/``OR``, so treating a
missing value as false is exactly equivalent.) Regular expressions are left to the engine, whose
regex dialect Chroma's users see: :func:`row_mask` returns ``None`` for a filter with ``$regex``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chroma_serverless.domain.columns import scalar_kind
from chroma_serverless.domain.filters import (
    COMPARISONS,
    DOCUMENT_KEY,
    ID_KEY,
    INT64_MAX,
    INT64_MIN,
    LOGICAL,
    NEGATIONS,
    is_int64,
)
from chroma_serverless.records import layout

if TYPE_CHECKING:
    from chroma_serverless.types import Filter, Where, WhereDocument

Mask = np.ndarray[Any, np.dtype[np.bool_]]
ARROW_COMPARISONS = {
    "=": pc.equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
    "<": pc.less,
    "<=": pc.less_equal,
}


class Unsupported(Exception):
    """The filter needs the engine (a regular expression)."""


def row_mask(request: Filter, table: pa.Table) -> Mask | None:
    """Rows of ``table`` matching ids AND where AND where_document; ``None`` if the filter
    needs the engine."""
    evaluate = _Evaluator(table)
    mask = np.ones(table.num_rows, dtype=bool)
    try:
        if request.ids is not None:
            mask &= evaluate.ids(request.ids)
        if request.where is not None:
            mask &= evaluate.where(request.where)
        if request.where_document is not None:
            mask &= evaluate.where_document(request.where_document)
    except Unsupported:
        return None
    return mask


class _Evaluator:
    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.rows = table.num_rows

    def ids(self, ids: list[str]) -> Mask:
        return _bools(pc.is_in(self.table.column(layout.ID), value_set=pa.array(ids, pa.string())))

    def where(self, where: Where) -> Mask:
        ((key, value),) = where.items()
        if key in LOGICAL:
            return self._combine(key, [self.where(child) for child in value])
        operator, operand = next(iter(value.items())) if isinstance(value, dict) else ("$eq", value)
        if key == DOCUMENT_KEY:
            return self.document(operator, operand)
        if key == ID_KEY:
            return self.record_id(operator, operand)
        return self.field(key, operator, operand)

    def record_id(self, operator: str, operand: str | list[str]) -> Mask:
        if operator in NEGATIONS:
            return ~self.record_id(NEGATIONS[operator], operand)
        return self.ids(operand if isinstance(operand, list) else [operand])

    def where_document(self, where_document: WhereDocument) -> Mask:
        ((operator, operand),) = where_document.items()
        if operator in LOGICAL:
            return self._combine(operator, [self.where_document(child) for child in operand])
        return self.document(operator, operand)

    def document(self, operator: str, operand: str) -> Mask:
        if operator in NEGATIONS:
            return ~self.document(NEGATIONS[operator], operand)
        if operator != "$contains":
            raise Unsupported(operator)
        column = self.table.column(layout.DOCUMENT)
        return _bools(pc.match_substring(column, operand))

    def field(self, key: str, operator: str, operand: Any) -> Mask:
        if operator in NEGATIONS:
            return ~self.field(key, NEGATIONS[operator], operand)
        if operator == "$contains":
            return self._contains(self._column(key, scalar_kind(operand) + "a"), operand)
        values = operand if operator == "$in" else [operand]
        sign = COMPARISONS.get(operator, "=")
        kind = scalar_kind(values[0])
        if kind not in ("i", "f"):
            return self._compare(self._column(key, kind), sign, values)
        return self._compare(self._column(key, "f"), sign, values) | self._compare_int(
            self._column(key, "i"), sign, values
        )

    def _column(self, key: str, kind: str) -> pa.ChunkedArray | None:
        name = layout.metadata_column(key, kind)
        return self.table.column(name) if name in self.table.column_names else None

    def _none(self) -> Mask:
        return np.zeros(self.rows, dtype=bool)

    def _contains(self, column: pa.ChunkedArray | None, value: Any) -> Mask:
        if column is None:
            return self._none()
        lists = column.combine_chunks()
        hits = np.asarray(_bools(pc.equal(pc.list_flatten(lists), pa.scalar(value))))
        mask = self._none()
        mask[np.asarray(pc.list_parent_indices(lists))[hits]] = True
        return mask

    def _compare(self, column: pa.ChunkedArray | None, sign: str, values: list[Any]) -> Mask:
        if column is None or not values:
            return self._none()
        if pa.types.is_floating(column.type):
            # Numbers compare as floats here, as the SQL engine casts; adding 0.0 turns -0.0
            # into 0.0, which compare equal but hash apart (``is_in`` hashes).
            values = [float(v) + 0.0 for v in values]
            column = pc.add(column, 0.0)
        if len(values) > 1:
            return _bools(pc.is_in(column, value_set=pa.array(values, column.type)))
        return _bools(ARROW_COMPARISONS[sign](column, pa.scalar(values[0], column.type)))

    def _compare_int(
        self, column: pa.ChunkedArray | None, sign: str, values: list[int | float]
    ) -> Mask:
        """An int64 column against numbers, exactly (no cast of the column to float): a float
        bound is rounded in the direction that keeps the comparison the same, as in SQL."""
        if column is None or sign == "=":
            return self._compare(column, sign, [int(v) for v in values if is_int64(v)])
        (value,) = values
        bound = math.floor(value) if sign in (">", "<=") else math.ceil(value)
        if bound > INT64_MAX:
            return self._present(column) if sign in ("<", "<=") else self._none()
        if bound < INT64_MIN:
            return self._none() if sign in ("<", "<=") else self._present(column)
        return self._compare(column, sign, [bound])

    def _present(self, column: pa.ChunkedArray) -> Mask:
        return _bools(pc.is_valid(column))

    @staticmethod
    def _combine(operator: str, masks: list[Mask]) -> Mask:
        combine = np.logical_and if operator == "$and" else np.logical_or
        return combine.reduce(masks)  # type: ignore[no-any-return]


def _bools(result: pa.ChunkedArray | pa.Array) -> Mask:
    """A predicate's result with missing values as false."""
    filled = pc.fill_null(result, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)
