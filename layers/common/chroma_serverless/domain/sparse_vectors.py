"""Sparse vectors on the wire: ``{"#type": "sparse_vector", "indices": [...], "values": [...],
"tokens"?: [...]}``, as metadata values of records and as the query of a sparse ``$knn``.

Checked as the official client checks them before sending (indices non-negative and strictly
ascending, one value per index), and kept as Chroma's server keeps them: indices are u32 and
values f32, so a value comes back as the nearest float32, written in its shortest form.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.types import SparseVector

TYPE_KEY = "#type"
TYPE_VALUE = "sparse_vector"
MAX_INDEX = 2**32 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_tagged(value: object) -> bool:
    """Whether ``value`` is a dict tagged as a sparse vector."""
    return isinstance(value, dict) and value.get(TYPE_KEY) == TYPE_VALUE


def parse(value: object, what: str) -> SparseVector:
    """The sparse vector ``value`` describes; ``what`` names it in errors."""
    if not is_tagged(value):
        raise InvalidArgumentError(
            f"Expected {what} to be a sparse vector "
            f'({{"{TYPE_KEY}": "{TYPE_VALUE}", "indices": [...], "values": [...]}}), got {value}'
        )
    assert isinstance(value, dict)
    indices, values, tokens = value.get("indices"), value.get("values"), value.get("tokens")
    if not isinstance(indices, list) or not isinstance(values, list):
        raise InvalidArgumentError(f"Expected {what} to have lists of indices and values")
    if len(indices) != len(values):
        raise InvalidArgumentError(
            f"Expected {what} indices and values to have the same length, got "
            f"{len(indices)} indices and {len(values)} values"
        )
    for position, index in enumerate(indices):
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
            raise InvalidArgumentError(
                f"Expected {what} indices to be integers between 0 and {MAX_INDEX}, got "
                f"{index!r} at position {position}"
            )
        if position and index <= indices[position - 1]:
            raise InvalidArgumentError(
                f"Expected {what} indices to be sorted in strictly ascending order, found "
                f"indices[{position}]={index} <= indices[{position - 1}]={indices[position - 1]}"
            )
    for position, number in enumerate(values):
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
            or abs(number) > FLOAT32_MAX
        ):
            raise InvalidArgumentError(
                f"Expected {what} values to be finite 32-bit floats, got {number!r} at "
                f"position {position}"
            )
    if tokens is not None and (
        not isinstance(tokens, list)
        or len(tokens) != len(indices)
        or not all(isinstance(t, str) for t in tokens)
    ):
        raise InvalidArgumentError(f"Expected {what} tokens to be one string per index")
    return SparseVector(
        tuple(indices), tuple(float(v) for v in values), None if tokens is None else tuple(tokens)
    )


def to_wire(vector: SparseVector) -> dict[str, Any]:
    wire: dict[str, Any] = {
        TYPE_KEY: TYPE_VALUE,
        "indices": list(vector.indices),
        "values": np.asarray(vector.values, dtype=np.float32),  # serialized as float32
    }
    if vector.tokens is not None:
        wire["tokens"] = list(vector.tokens)
    return wire
