"""Chroma filters as one LanceDB SQL predicate over the typed-column layout
(:mod:`chroma_serverless.records.layout`).

User text reaches SQL only as a quoted string literal (single quotes doubled) and keys only as
encoded, backtick-quoted identifiers, so a key or value containing quotes, backslashes, ``%``,
``_`` or SQL fragments filters exactly as written. The semantics are the grammar's
(:mod:`chroma_serverless.domain.filters`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

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
    from collections.abc import Collection

    from chroma_serverless.types import Filter, Where, WhereDocument


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        # The SQL parser reads -9223372036854775808 as -(9223372036854775808), which overflows
        # int64 and turns into a float; spell the minimum as an expression instead.
        return f"({INT64_MIN + 1} - 1)" if value == INT64_MIN else str(value)
    if isinstance(value, float):
        return repr(value)
    return sql_string(value)


def identifier(column: str) -> str:
    return f"`{column}`"


def to_sql(request: Filter, columns: Collection[str]) -> str | None:
    """One SQL predicate for ids AND where AND where_document, or ``None`` for no filter.

    ``columns`` are the table's existing columns: a key never written has no column, so its
    positive predicates are FALSE and its negations TRUE.
    """
    translator = _Translator(frozenset(columns))
    parts = []
    if request.ids is not None:
        parts.append(translator.ids(request.ids))
    if request.where is not None:
        parts.append(translator.where(request.where))
    if request.where_document is not None:
        parts.append(translator.where_document(request.where_document))
    return " AND ".join(f"({part})" for part in parts) if parts else None


class _Translator:
    def __init__(self, columns: frozenset[str]) -> None:
        self.columns = columns

    def ids(self, ids: list[str]) -> str:
        if not ids:
            return "FALSE"
        return f"{identifier(layout.ID)} IN ({', '.join(sql_string(i) for i in ids)})"

    def where(self, where: Where) -> str:
        ((key, value),) = where.items()
        if key in LOGICAL:
            joiner = " AND " if key == "$and" else " OR "
            return joiner.join(f"({self.where(child)})" for child in value)
        if isinstance(value, dict):
            ((operator, operand),) = value.items()
        else:
            operator, operand = "$eq", value
        if key == DOCUMENT_KEY:
            return self.document(operator, operand)
        if key == ID_KEY:
            return self.record_id(operator, operand)
        return self.field(key, operator, operand)

    def record_id(self, operator: str, operand: str | list[str]) -> str:
        if operator in NEGATIONS:
            return f"({self.record_id(NEGATIONS[operator], operand)}) IS NOT TRUE"
        return self.ids(operand if isinstance(operand, list) else [operand])

    def where_document(self, where_document: WhereDocument) -> str:
        ((operator, operand),) = where_document.items()
        if operator in LOGICAL:
            joiner = " AND " if operator == "$and" else " OR "
            return joiner.join(f"({self.where_document(child)})" for child in operand)
        return self.document(operator, operand)

    def document(self, operator: str, operand: str) -> str:
        if operator in NEGATIONS:
            return f"({self.document(NEGATIONS[operator], operand)}) IS NOT TRUE"
        column = identifier(layout.DOCUMENT)
        if operator == "$contains":
            return f"strpos({column}, {sql_string(operand)}) > 0"
        # Not regexp_like: for a pattern that is plain text the engine rewrites regexp_like
        # into LIKE without escaping backslashes, so a backslash would match the wrong text.
        return f"regexp_count({column}, {sql_string(operand)}) > 0"

    def field(self, key: str, operator: str, operand: Any) -> str:
        if operator in NEGATIONS:
            return f"({self.field(key, NEGATIONS[operator], operand)}) IS NOT TRUE"
        if operator == "$contains":
            column = self._column(key, scalar_kind(operand) + "a")
            return f"array_has({column}, {sql_literal(operand)})" if column else "FALSE"
        values = operand if operator == "$in" else [operand]
        sign = COMPARISONS.get(operator, "=")
        kind = scalar_kind(values[0])
        if kind not in ("i", "f"):
            return self._compare(self._column(key, kind), sign, values)
        terms = [
            self._compare(self._column(key, "f"), sign, values),
            self._compare_int(self._column(key, "i"), sign, values),
        ]
        return " OR ".join(term for term in terms if term != "FALSE") or "FALSE"

    def _column(self, key: str, kind: str) -> str | None:
        column = layout.metadata_column(key, kind)
        return identifier(column) if column in self.columns else None

    @staticmethod
    def _compare(column: str | None, sign: str, values: list[Any]) -> str:
        if column is None or not values:
            return "FALSE"
        if len(values) > 1:
            return f"{column} IN ({', '.join(sql_literal(v) for v in values)})"
        return f"{column} {sign} {sql_literal(values[0])}"

    @classmethod
    def _compare_int(cls, column: str | None, sign: str, values: list[int | float]) -> str:
        """An int64 column against numbers; LanceDB refuses to compare it with a float literal.

        A float bound is rounded in the direction that keeps the comparison exact
        (``n > 1.5`` is ``n > 1``); a float with no int equal to it matches nothing.
        """
        if column is None or sign == "=":
            return cls._compare(column, sign, [int(v) for v in values if is_int64(v)])
        (value,) = values
        bound = math.floor(value) if sign in (">", "<=") else math.ceil(value)
        if bound > INT64_MAX:
            return f"{column} IS NOT NULL" if sign in ("<", "<=") else "FALSE"
        if bound < INT64_MIN:
            return "FALSE" if sign in ("<", "<=") else f"{column} IS NOT NULL"
        return f"{column} {sign} {sql_literal(bound)}"
