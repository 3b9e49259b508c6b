"""Parsing and checking searches: the Search API's JSON into :class:`~.model.Search` values,
checked against the collection's schema and dimension before any runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.domain import checks
from chroma_serverless.domain.filters import DOCUMENT_KEY, ID_KEY, LOGICAL, validate_where
from chroma_serverless.domain.schema import indexes
from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.search import grouping, ranking
from chroma_serverless.search.model import EMBEDDING_KEY, FIELDS, SPECIAL_KEYS, Search, Select
from chroma_serverless.types import Filter

if TYPE_CHECKING:
    from chroma_serverless.types import Collection, Where


def parse(raw: object, index: int) -> Search:
    path = f"searches[{index}]"
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"{path}: expected an object, got {raw!r}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise InvalidArgumentError(
            f"{path}: unknown field {unknown[0]!r}; expected {', '.join(FIELDS)}"
        )
    where = raw.get("filter")
    if where is not None and where != {}:
        validate_where(where)
    rank = None if raw.get("rank") is None else ranking.parse(raw["rank"], f"{path}.rank")
    if rank is not None and not ranking.knns(rank):
        raise InvalidArgumentError(
            f"{path}.rank: expected at least one $knn; a rank of constants scores no record"
        )
    group_by = grouping.parse(raw.get("group_by"), f"{path}.group_by")
    if group_by is not None and rank is None:
        raise InvalidArgumentError(f"{path}.group_by: grouping needs a rank expression")
    offset, limit = _limit(raw.get("limit"), f"{path}.limit")
    return Search(Filter(where=where or None), rank, group_by, offset, limit, _select(raw, path))


def _limit(raw: object, path: str) -> tuple[int, int | None]:
    if raw is None:
        return 0, None
    if not isinstance(raw, dict) or set(raw) - {"offset", "limit"}:
        raise InvalidArgumentError(
            f"{path}: expected an object with 'offset' and optionally 'limit', got {raw!r}"
        )
    offset, limit = raw.get("offset", 0), raw.get("limit")
    for name, value in (("offset", offset), ("limit", limit)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidArgumentError(f"{path}.{name}: expected an integer, got {value!r}")
    checks.count(offset, f"{path}.offset")
    checks.count(limit, f"{path}.limit")
    return offset, limit


def _select(raw: dict[str, Any], path: str) -> Select:
    select = raw.get("select")
    if select is None:
        return Select(())
    keys = select.get("keys", []) if isinstance(select, dict) else None
    if (
        not isinstance(select, dict)
        or set(select) - {"keys"}
        or not isinstance(keys, list)
        or not all(isinstance(k, str) for k in keys)
    ):
        raise InvalidArgumentError(
            f"{path}.select: expected an object with a list of keys, got {select!r}"
        )
    for key in keys:
        if key.startswith("#") and key not in SPECIAL_KEYS:
            raise InvalidArgumentError(
                f"{path}.select: unknown key {key!r}; expected a metadata key or one of "
                f"{', '.join(SPECIAL_KEYS)}"
            )
    return Select(tuple(dict.fromkeys(keys)))


# ---------------------------------------------------------------------------- checks


def check(search: Search, collection: Collection) -> None:
    """What the collection's schema and dimension allow: filters on indexed keys only,
    sparse knn on a sparse-indexed key, dense knn on ``#embedding`` in its dimension."""
    schema = collection.schema
    if search.filter.where is not None:
        _check_filter(search.filter.where, schema)
    for knn in ranking.knns(search.rank) if search.rank is not None else []:
        if knn.sparse:
            indexes.check_indexed(schema, knn.key, "SparseVector")
            continue
        if knn.key != EMBEDDING_KEY:
            raise InvalidArgumentError(
                f"Dense $knn searches {EMBEDDING_KEY}, got key {knn.key!r}; a key of "
                "sparse vectors needs a sparse query"
            )
        assert isinstance(knn.query, np.ndarray)
        if collection.dimension is not None and collection.dimension != len(knn.query):
            raise InvalidArgumentError(
                f"Collection expecting embedding with dimension of {collection.dimension}, "
                f"got {len(knn.query)}"
            )


VALUE_TYPES = {bool: "Bool", int: "Int", float: "Float", str: "Str"}


def _check_filter(where: Where, schema: dict[str, Any] | None) -> None:
    ((key, value),) = where.items()
    if key in LOGICAL:
        for child in value:
            _check_filter(child, schema)
    elif key == DOCUMENT_KEY:
        if not indexes.full_text_search_enabled(schema):
            raise InvalidArgumentError(
                "Cannot filter using full-text search because FTS indexing is disabled"
            )
    elif key != ID_KEY:
        operand = next(iter(value.values())) if isinstance(value, dict) else value
        sample = operand[0] if isinstance(operand, list) else operand
        indexes.check_indexed(schema, key, VALUE_TYPES[type(sample)])
