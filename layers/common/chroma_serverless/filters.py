"""Validate Chroma ``where`` / ``where_document`` filters and translate them to LanceDB SQL.

Validation raises :class:`InvalidArgumentError` with Chroma's wording. Translation targets the
typed-column layout of :mod:`chroma_serverless.layout`. User text reaches SQL only as a quoted
string literal (single quotes doubled) and keys only as encoded, backtick-quoted identifiers, so a
key or value containing quotes, backslashes, ``%``, ``_`` or SQL fragments filters exactly as
written. ``#document`` filters the document and ``#id`` the record's id (``$eq``, ``$ne``,
``$in``, ``$nin``). Semantics follow Chroma: ``$ne``/``$nin``/``$not_contains``/``$not_regex``
also match records lacking the key or document; int and float compare numerically; bool never
equals a number.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from chroma_serverless import layout
from chroma_serverless.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Collection

    from chroma_serverless.types import Filter, Where, WhereDocument

LOGICAL = ("$and", "$or")
COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
FIELD_OPERATORS = ("$eq", "$ne", "$in", "$nin", "$contains", "$not_contains", *COMPARISONS)
DOCUMENT_OPERATORS = ("$contains", "$not_contains", "$regex", "$not_regex")
DOCUMENT_KEY = "#document"
ID_KEY = "#id"  # the record's id, in the Search API's filters
ID_OPERATORS = ("$eq", "$ne", "$in", "$nin")
NEGATIONS = {"$ne": "$eq", "$nin": "$in", "$not_contains": "$contains", "$not_regex": "$regex"}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 64


def is_scalar(value: object) -> bool:
    return isinstance(value, str | bool | int | float)


def check_scalar(value: object, what: str) -> None:
    """Reject values no metadata column can hold: non-finite floats and ints beyond int64."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"Expected {what} to be a finite number, got {value}")
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidArgumentError(f"Expected {what} to fit in a 64-bit integer, got {value}")


# --------------------------------------------------------------------------- validation


def validate_where(where: object, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise InvalidArgumentError(f"Expected where to be nested at most {MAX_DEPTH} levels deep")
    if not isinstance(where, dict):
        raise InvalidArgumentError(f"Expected where to be a dict, got {where}")
    if len(where) != 1:
        raise InvalidArgumentError(f"Expected where to have exactly one operator, got {where}")
    ((key, value),) = where.items()
    if key in LOGICAL:
        _validate_logical(key, value, "where")
        for child in value:
            validate_where(child, depth + 1)
        return
    if key.startswith("$"):
        raise InvalidArgumentError(
            f"Expected where key to be a metadata key or $and/$or, got {key}"
        )
    if key.startswith("#") and key not in (DOCUMENT_KEY, ID_KEY):
        raise InvalidArgumentError(
            f"Expected where key to be a metadata key, {DOCUMENT_KEY} or {ID_KEY}, got {key}"
        )
    if key == ID_KEY and not isinstance(value, dict | str):
        raise InvalidArgumentError(f"Expected where value for {ID_KEY} to be a str, got {value}")
    if isinstance(value, dict):
        if len(value) != 1:
            raise InvalidArgumentError(
                f"Expected operator expression to have exactly one operator, got {value}"
            )
        ((operator, operand),) = value.items()
        _validate_operand(key, operator, operand)
    elif is_scalar(value):
        check_scalar(value, "where value")
    else:
        raise InvalidArgumentError(
            f"Expected where value to be a str, int, float, or operator expression, got {value}"
        )


def _validate_logical(key: str, value: object, what: str) -> None:
    if not isinstance(value, list) or not value:
        raise InvalidArgumentError(
            f"Expected {what} value for {key} to be a non-empty list of {what} expressions, "
            f"got {value}"
        )


def _validate_operand(key: str, operator: str, operand: object) -> None:
    if key == ID_KEY:
        if operator not in ID_OPERATORS:
            raise InvalidArgumentError(
                f"Expected where operator for {ID_KEY} to be one of {', '.join(ID_OPERATORS)}, "
                f"got {operator}"
            )
        strings = operand if operator in ("$in", "$nin") else [operand]
        if (
            not isinstance(strings, list)
            or not strings
            or not all(isinstance(i, str) for i in strings)
        ):
            raise InvalidArgumentError(
                f"Expected where operand value for {ID_KEY} {operator} to be "
                f"{'a non-empty list of str' if operator in ('$in', '$nin') else 'a str'}, "
                f"got {operand}"
            )
        return
    if key == DOCUMENT_KEY:
        if operator not in DOCUMENT_OPERATORS:
            raise InvalidArgumentError(
                f"Expected where operator for {DOCUMENT_KEY} to be one of "
                f"{', '.join(DOCUMENT_OPERATORS)}, got {operator}"
            )
        if not isinstance(operand, str) or not operand:
            raise InvalidArgumentError(
                f"Expected where operand value for {DOCUMENT_KEY} to be a non-empty str, "
                f"got {operand}"
            )
        return
    if operator not in FIELD_OPERATORS:
        raise InvalidArgumentError(
            f"Expected where operator to be one of {', '.join(FIELD_OPERATORS)}, got {operator}"
        )
    if operator in COMPARISONS:
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            raise InvalidArgumentError(
                f"Expected operand value to be an int or a float for operator {operator}, "
                f"got {operand}"
            )
    elif operator in ("$in", "$nin"):
        if (
            not isinstance(operand, list)
            or not operand
            or not all(is_scalar(x) and type(x) is type(operand[0]) for x in operand)
        ):
            raise InvalidArgumentError(
                f"Expected where operand value to be a non-empty list, and all values to be of "
                f"the same type got {operand}"
            )
        for item in operand:
            check_scalar(item, "where operand value")
        return
    elif not is_scalar(operand):
        raise InvalidArgumentError(
            f"Expected where operand value to be a str, int, float or bool for operator "
            f"{operator}, got {operand}"
        )
    check_scalar(operand, "where operand value")


def validate_where_document(where_document: object, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise InvalidArgumentError(
            f"Expected where document to be nested at most {MAX_DEPTH} levels deep"
        )
    if not isinstance(where_document, dict):
        raise InvalidArgumentError(f"Expected where document to be a dict, got {where_document}")
    if len(where_document) != 1:
        raise InvalidArgumentError(
            f"Expected where document to have exactly one operator, got {where_document}"
        )
    ((operator, operand),) = where_document.items()
    if operator in LOGICAL:
        _validate_logical(operator, operand, "where document")
        for child in operand:
            validate_where_document(child, depth + 1)
        return
    if operator not in DOCUMENT_OPERATORS:
        raise InvalidArgumentError(
            f"Expected where document operator to be one of "
            f"{', '.join((*DOCUMENT_OPERATORS, *LOGICAL))}, got {operator}"
        )
    if not isinstance(operand, str) or not operand:
        raise InvalidArgumentError(
            f"Expected where document operand value for operator {operator} to be a non-empty "
            f"str, got {operand}"
        )


# --------------------------------------------------------------------------- translation


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
            column = self._column(key, layout.scalar_kind(operand) + "a")
            return f"array_has({column}, {sql_literal(operand)})" if column else "FALSE"
        values = operand if operator == "$in" else [operand]
        sign = COMPARISONS.get(operator, "=")
        kind = layout.scalar_kind(values[0])
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


def is_int64(value: int | float) -> bool:
    if isinstance(value, float) and not value.is_integer():
        return False
    return INT64_MIN <= value <= INT64_MAX
