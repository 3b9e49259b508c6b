"""``group_by`` of the Search API: ranked records grouped by metadata values, the ``k`` first of
each group by ``$min_k`` (ascending) or ``$max_k`` (descending) over some keys, then all groups
merged back in rank order (Chroma's RankedGroupBy).

A record missing a key groups with the others missing it; when sorting, a missing value comes
before any value (so last for ``$max_k``), as ``None`` does in Chroma. Values of different types
sort by type (bool, number, str, list, sparse vector), ints and floats compare numerically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from chroma_serverless.domain import checks
from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.types import SparseVector

if TYPE_CHECKING:
    from collections.abc import Sequence

    from chroma_serverless.types import Metadata, MetadataValue

SCORE_KEY = "#score"
AGGREGATES = ("$min_k", "$max_k")


@dataclass(frozen=True)
class GroupBy:
    keys: tuple[str, ...]
    aggregate: Literal["$min_k", "$max_k"]
    order: tuple[str, ...]  # the aggregate's keys: metadata keys or #score
    k: int


@dataclass(frozen=True)
class Ranked:
    """A record with its score, its position in insertion order and its metadata."""

    id: str
    score: float
    position: int
    metadata: Metadata | None = None


def parse(raw: object, path: str = "group_by") -> GroupBy | None:
    """``None`` for no grouping (``{}`` or ``null``)."""
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict) or set(raw) != {"keys", "aggregate"}:
        raise InvalidArgumentError(
            f"{path}: expected {{}} or an object with 'keys' and 'aggregate', got {raw!r}"
        )
    keys = _keys(raw["keys"], f"{path}.keys", score=False)
    aggregate = raw["aggregate"]
    if not isinstance(aggregate, dict) or len(aggregate) != 1:
        raise InvalidArgumentError(
            f"{path}.aggregate: expected an object with one of {', '.join(AGGREGATES)}, "
            f"got {aggregate!r}"
        )
    ((operator, operand),) = aggregate.items()
    where = f"{path}.aggregate.{operator}"
    if operator not in AGGREGATES:
        raise InvalidArgumentError(
            f"{path}.aggregate: unknown aggregate {operator!r}; expected one of "
            f"{', '.join(AGGREGATES)}"
        )
    if not isinstance(operand, dict) or set(operand) != {"keys", "k"}:
        raise InvalidArgumentError(
            f"{where}: expected an object with 'keys' and 'k', got {operand!r}"
        )
    k = operand["k"]
    if not isinstance(k, int) or isinstance(k, bool):
        raise InvalidArgumentError(f"{where}.k: expected an integer, got {k!r}")
    checks.count(k, f"{where}.k", minimum=1)
    return GroupBy(keys, operator, _keys(operand["keys"], f"{where}.keys", score=True), k)


def _keys(raw: object, path: str, score: bool) -> tuple[str, ...]:
    allowed = "metadata keys or #score" if score else "metadata keys"
    if not isinstance(raw, list) or not raw or not all(isinstance(k, str) for k in raw):
        raise InvalidArgumentError(f"{path}: expected a non-empty list of {allowed}, got {raw!r}")
    for key in raw:
        if key.startswith("#") and not (score and key == SCORE_KEY):
            raise InvalidArgumentError(f"{path}: expected {allowed}, got {key!r}")
    return tuple(raw)


def apply(group_by: GroupBy, ranked: Sequence[Ranked]) -> list[Ranked]:
    """The ``k`` first records of each group, in rank order (``ranked`` is in rank order)."""
    groups: dict[tuple[Any, ...], list[Ranked]] = {}
    for record in ranked:
        metadata = record.metadata or {}
        identity = tuple(_identity(metadata.get(key)) for key in group_by.keys)
        groups.setdefault(identity, []).append(record)
    kept = []
    for members in groups.values():
        descending = group_by.aggregate == "$max_k"
        members.sort(key=lambda r: _order(group_by.order, r), reverse=descending)
        kept.extend(members[: group_by.k])
    return sorted(kept, key=lambda r: ranked_order(r.score, r.position))


def ranked_order(score: float, position: int) -> tuple[bool, float, int]:
    """Ascending score (NaN last), ties in insertion order."""
    nan = score != score
    return nan, 0.0 if nan else score, position


def _order(keys: tuple[str, ...], record: Ranked) -> tuple[Any, ...]:
    metadata = record.metadata or {}
    return tuple(_sortable(record.score if key == SCORE_KEY else metadata.get(key)) for key in keys)


def _identity(value: MetadataValue | None) -> Any:
    """Equal for equal values of the same type (1 and 1.0 group apart, as in Chroma)."""
    if isinstance(value, list):
        return ("list", type(value[0]).__name__, tuple(value))
    if isinstance(value, SparseVector):
        return ("sparse", value.indices, value.values)
    return (type(value).__name__, value)


def _sortable(value: MetadataValue | float | None) -> tuple[Any, ...]:
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, *ranked_order(float(value), 0)[:2])
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, list):
        return (4, tuple(_sortable(v) for v in value))
    return (5, value.indices, value.values)
