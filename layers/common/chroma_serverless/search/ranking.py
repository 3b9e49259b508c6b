"""Rank expressions of the Search API: parsed from the wire, evaluated over knn results.

A ``$knn`` scores the records in its candidate list (its ``limit`` nearest): their distance, or
their 0-based position with ``return_rank``. Arithmetic combines scores record by record; a
record missing from a knn's list takes the knn's ``default``, or, without one, drops out of
every expression that uses that knn (Chroma's ``RankDomain``). The client compiles ``Rrf`` into
these operators. Results sort ascending by the final score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.domain import checks, sparse_vectors
from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.types import SparseVector

if TYPE_CHECKING:
    from collections.abc import Callable

    from chroma_serverless.types import Vectors

    Array = np.ndarray[Any, np.dtype[np.float64]]

EMBEDDING_KEY = "#embedding"
DEFAULT_LIMIT = 16
MAX_DEPTH = 64
KNN_FIELDS = ("query", "key", "limit", "default", "return_rank")
# operator -> (numpy function, the value a fold over the list starts from)
LISTS: dict[str, tuple[Callable[..., Any], float]] = {
    "$sum": (np.add, 0.0),
    "$mul": (np.multiply, 1.0),
    "$max": (np.fmax, -math.inf),
    "$min": (np.fmin, math.inf),
}
PAIRS: dict[str, Callable[..., Any]] = {"$sub": np.subtract, "$div": np.divide}
UNARY: dict[str, Callable[..., Any]] = {"$abs": np.abs, "$exp": np.exp, "$log": np.log}
OPERATORS = ("$knn", "$val", *LISTS, *PAIRS, *UNARY)


@dataclass(frozen=True, eq=False)
class Knn:
    query: Vectors | SparseVector
    key: str
    limit: int
    default: float | None
    return_rank: bool

    @property
    def sparse(self) -> bool:
        return isinstance(self.query, SparseVector)


@dataclass(frozen=True)
class Val:
    value: float


@dataclass(frozen=True)
class Apply:
    operator: str
    operands: tuple[Rank, ...]


Rank = Knn | Val | Apply


# ---------------------------------------------------------------------------- parsing


def parse(raw: object, path: str = "rank", depth: int = 0) -> Rank:
    if depth > MAX_DEPTH:
        raise InvalidArgumentError(f"{path}: expected at most {MAX_DEPTH} nested operators")
    if not isinstance(raw, dict) or len(raw) != 1:
        raise InvalidArgumentError(
            f"{path}: expected an object with exactly one operator "
            f"({', '.join(OPERATORS)}), got {_show(raw)}"
        )
    ((operator, operand),) = raw.items()
    where = f"{path}.{operator}"
    if operator == "$knn":
        return _knn(operand, where)
    if operator == "$val":
        return Val(_number(operand, where))
    if operator in LISTS:
        if not isinstance(operand, list) or not operand:
            raise InvalidArgumentError(
                f"{where}: expected a non-empty list of rank expressions, got {_show(operand)}"
            )
        return Apply(
            operator, tuple(parse(r, f"{where}[{i}]", depth + 1) for i, r in enumerate(operand))
        )
    if operator in PAIRS:
        if not isinstance(operand, dict) or set(operand) != {"left", "right"}:
            raise InvalidArgumentError(
                f"{where}: expected an object with 'left' and 'right' rank expressions, "
                f"got {_show(operand)}"
            )
        sides = tuple(parse(operand[s], f"{where}.{s}", depth + 1) for s in ("left", "right"))
        return Apply(operator, sides)
    if operator in UNARY:
        return Apply(operator, (parse(operand, where, depth + 1),))
    raise InvalidArgumentError(
        f"{path}: unknown rank operator {operator!r}; expected one of {', '.join(OPERATORS)}"
    )


def _knn(raw: object, path: str) -> Knn:
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"{path}: expected an object, got {_show(raw)}")
    unknown = sorted(set(raw) - set(KNN_FIELDS))
    if unknown:
        raise InvalidArgumentError(
            f"{path}: unknown field {unknown[0]!r}; expected {', '.join(KNN_FIELDS)}"
        )
    if "query" not in raw:
        raise InvalidArgumentError(f"{path}: missing field 'query'")
    query = raw["query"]
    vector: Vectors | SparseVector
    if isinstance(query, dict):
        vector = sparse_vectors.parse(query, f"{path}.query")
    elif isinstance(query, list) and query and all(_is_number(x) for x in query):
        vector = np.asarray(query, dtype=np.float32)
        if not np.isfinite(vector).all():
            raise InvalidArgumentError(f"{path}.query: expected only finite numbers")
    else:
        raise InvalidArgumentError(
            f"{path}.query: expected a dense vector (a non-empty list of numbers) or a sparse "
            f"vector; text queries are embedded by the client, got {_show(query)}"
        )
    key = raw.get("key", EMBEDDING_KEY)
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"{path}.key: expected a non-empty str, got {_show(key)}")
    limit = raw.get("limit", DEFAULT_LIMIT)
    if not _is_int(limit):
        raise InvalidArgumentError(f"{path}.limit: expected an integer, got {_show(limit)}")
    checks.count(limit, f"{path}.limit", minimum=1)
    default = raw.get("default")
    return_rank = raw.get("return_rank", False)
    if not isinstance(return_rank, bool):
        raise InvalidArgumentError(
            f"{path}.return_rank: expected a boolean, got {_show(return_rank)}"
        )
    return Knn(
        vector,
        key,
        limit,
        None if default is None else _number(default, f"{path}.default"),
        return_rank,
    )


def _number(value: object, path: str) -> float:
    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise InvalidArgumentError(f"{path}: expected a finite number, got {_show(value)}")
    return float(value)  # type: ignore[arg-type]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def knns(rank: Rank) -> list[Knn]:
    """The knn leaves, depth first (the order :func:`evaluate` consumes their results)."""
    if isinstance(rank, Knn):
        return [rank]
    if isinstance(rank, Val):
        return []
    return [knn for operand in rank.operands for knn in knns(operand)]


# ---------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Domain:
    """Scores of the candidates: ``values`` where ``present``, ``default`` for the rest
    (``None``: the rest drop out)."""

    values: Array
    present: np.ndarray[Any, np.dtype[np.bool_]]
    default: float | None


def evaluate(rank: Rank, results: list[list[tuple[str, float]]]) -> dict[str, float]:
    """Each record's score: ``results`` holds each knn's ``(id, distance)`` list, nearest
    first, in the order of :func:`knns`. Records no knn returned have no score."""
    ids = list(dict.fromkeys(i for result in results for i, _ in result))
    position = {record_id: i for i, record_id in enumerate(ids)}
    remaining = iter(results)

    def flat(value: float) -> _Domain:
        return _Domain(np.full(len(ids), np.nan), np.zeros(len(ids), bool), value)

    def knn(leaf: Knn) -> _Domain:
        found = next(remaining)
        values = np.full(len(ids), np.nan)
        present = np.zeros(len(ids), bool)
        for rank_of, (record_id, distance) in enumerate(found):
            values[position[record_id]] = rank_of if leaf.return_rank else distance
            present[position[record_id]] = True
        return _Domain(values, present, leaf.default)

    def walk(node: Rank) -> _Domain:
        if isinstance(node, Knn):
            return knn(node)
        if isinstance(node, Val):
            return flat(node.value)
        operands = [walk(operand) for operand in node.operands]
        if node.operator in UNARY:
            (only,) = operands
            function = UNARY[node.operator]
            default = None if only.default is None else float(function(only.default))
            return _Domain(function(only.values), only.present, default)
        if node.operator in PAIRS:
            return _merge(operands[0], operands[1], PAIRS[node.operator])
        function, start = LISTS[node.operator]
        domain = flat(start)
        for operand in operands:
            domain = _merge(domain, operand, function)
        return domain

    with np.errstate(all="ignore"):
        domain = walk(rank)
    return {
        record_id: float(domain.values[i]) for i, record_id in enumerate(ids) if domain.present[i]
    }


def _filled(domain: _Domain) -> Array:
    """The domain's values, its default where a record is missing (if it has one)."""
    if domain.default is None:
        return domain.values
    return np.where(domain.present, domain.values, domain.default)


def _merge(left: _Domain, right: _Domain, function: Callable[..., Any]) -> _Domain:
    """``function`` of two domains, record by record (Rust's ``RankDomain::merge``)."""
    lhs, rhs = _filled(left), _filled(right)
    if left.default is not None and right.default is not None:
        present = left.present | right.present
        default: float | None = float(function(left.default, right.default))
    elif left.default is not None:
        present, default = right.present, None
    elif right.default is not None:
        present, default = left.present, None
    else:
        present, default = left.present & right.present, None
    return _Domain(function(lhs, rhs), present, default)
