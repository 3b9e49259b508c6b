"""Wire names of our errors are keys the official client maps to the right exception class."""

from __future__ import annotations

import inspect

import pytest
from chromadb.errors import error_types

from chroma_serverless import errors

OURS = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.ChromaError)
]


@pytest.mark.parametrize("error", OURS, ids=lambda cls: cls.__name__)
def test_every_wire_name_is_known_to_the_official_client(error: type[errors.ChromaError]) -> None:
    assert error.name in error_types or error.name == "Unimplemented"


@pytest.mark.parametrize(
    ("error", "client_class", "status"),
    [
        (errors.InvalidArgumentError, "InvalidArgumentError", 400),
        (errors.NotFoundError, "NotFoundError", 404),
        (errors.DuplicateIDError, "DuplicateIDError", 400),
        (errors.BatchSizeExceededError, "BatchSizeExceededError", 413),
        (errors.InternalError, "InternalError", 500),
        (errors.UniqueConstraintError, "ChromaError", 409),
        (errors.BusyError, "RateLimitError", 429),
    ],
)
def test_client_raises_the_matching_class(
    error: type[errors.ChromaError], client_class: str, status: int
) -> None:
    # "InvalidArgument" (the class's own name()) is not a key; "InvalidArgumentError" is.
    assert error_types[error.name].__name__ == client_class
    assert error.status_code == status
