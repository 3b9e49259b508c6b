"""Chroma's ``where`` / ``where_document`` filter grammar, validated with Chroma's wording.

``#document`` filters the document and ``#id`` the record's id (``$eq``, ``$ne``, ``$in``,
``$nin``). Semantics (carried out by the record store: ``records/sql.py`` for the engine,
``records/masks.py`` in memory) follow Chroma: ``$ne``/``$nin``/``$not_contains``/``$not_regex``
also match records lacking the key or document; int and float compare numerically; bool never
equals a number.
"""

from __future__ import annotations

import math

from chroma_serverless.errors import InvalidArgumentError

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


def is_int64(value: int | float) -> bool:
    if isinstance(value, float) and not value.is_integer():
        return False
    return INT64_MIN <= value <= INT64_MAX
