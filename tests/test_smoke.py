from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import chromadb
    from fastapi.testclient import TestClient


def test_heartbeat_in_process(api: TestClient) -> None:
    assert "nanosecond heartbeat" in api.get("/api/v2/heartbeat").json()


def test_official_client_round_trip(client: chromadb.ClientAPI) -> None:
    collection = client.create_collection("smoke")
    collection.add(ids=["a"], embeddings=[[1.0, 2.0]])
    assert collection.count() == 1
