"""The official client's round trip through a real server (the in-process smoke test is
``tests/unit/http/test_smoke.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.factories import f32

if TYPE_CHECKING:
    from chromadb.api import ClientAPI


def test_official_client_round_trip(client: ClientAPI) -> None:
    collection = client.create_collection("smoke")
    collection.add(ids=["a"], embeddings=f32([[1.0, 2.0]]))
    assert collection.count() == 1
