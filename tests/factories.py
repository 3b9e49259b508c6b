"""Domain values built for tests: collections with fresh ids, random vectors, and the float32
arrays the official client's type hints ask for.

A test passes the values it depends on (a name, a dimension, a space...) and leaves the rest to
the defaults here."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.types import DEFAULT_DATABASE, DEFAULT_TENANT, Collection

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from chroma_serverless.types import Metadata, Space


def collection(
    *,
    id: str | None = None,
    name: str = "c",
    tenant: str = DEFAULT_TENANT,
    database: str = DEFAULT_DATABASE,
    metadata: Metadata | None = None,
    configuration: dict[str, Any] | None = None,
    space: Space | None = None,
    dimension: int | None = None,
    schema: dict[str, Any] | None = None,
) -> Collection:
    """A collection with a fresh id (unless ``id`` is given) in the default tenant and database.

    Its configuration is ``configuration`` as given, or else HNSW in ``space`` (default ``l2``):
    ``{"hnsw": {"space": space}}``. Pass one or the other, not both.
    """
    if configuration is not None and space is not None:
        raise TypeError("collection() takes a configuration or a space, not both")
    return Collection(
        id=str(uuid.uuid4()) if id is None else id,
        name=name,
        tenant=tenant,
        database=database,
        metadata=metadata,
        configuration={"hnsw": {"space": space or "l2"}}
        if configuration is None
        else configuration,
        dimension=dimension,
        schema=schema,
    )


def vectors(n: int, *, dimension: int = 8, seed: int = 0) -> npt.NDArray[np.float32]:
    """``n`` random float32 vectors (standard normal), the same for the same seed."""
    return np.random.default_rng(seed).normal(size=(n, dimension)).astype(np.float32)


def f32(rows: Sequence[Sequence[float]]) -> npt.NDArray[np.float32]:
    """Literal vectors as the official client holds them: it turns lists of floats into float32
    arrays before sending, but its type hints accept no plain ``list[list[float]]``."""
    return np.asarray(rows, dtype=np.float32)
