"""Server-side embedding over plain HTTP: documents without vectors and query_texts are embedded
with the collection's function, giving the vectors Chroma's own default function gives."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from chroma_serverless.embedding.model import MODEL_FILES
from tests.support.server import Server

if TYPE_CHECKING:
    from pathlib import Path

    from fastapi.testclient import TestClient

DB = "/api/v2/tenants/default_tenant/databases/default_database"
DOCUMENTS = {
    "cat": "The cat sat on the warm windowsill and purred.",
    "dog": "A dog barked at the mail carrier all morning.",
    "rocket": "The rocket launch was delayed by high winds over the pad.",
    "pasta": "Boil the pasta in salted water for nine minutes.",
    "tokyo": "東京は日本の首都です。",
}


def create(api: TestClient, name: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"{DB}/collections", json={"name": name, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def client_vectors(built_model: Path, tmp_path: Path, texts: list[str]) -> Any:
    """What the official client's default embedding function computes, on our exported model
    (copied where the client looks, so it downloads nothing)."""
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    target = tmp_path / ONNXMiniLM_L6_V2.EXTRACTED_FOLDER_NAME
    target.mkdir()
    for name in MODEL_FILES:
        shutil.copyfile(built_model / name, target / name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ONNXMiniLM_L6_V2, "DOWNLOAD_PATH", tmp_path)
        return np.array(ONNXMiniLM_L6_V2()(texts), dtype=np.float32)


@pytest.mark.usefixtures("built_model")
def test_documents_only_round_trip(api: TestClient) -> None:
    collection = create(api, "docs", configuration={"hnsw": {"space": "cosine"}})
    # Chroma reports no function for such a collection; like the official client, the server
    # then embeds with the default one.
    assert collection["configuration_json"]["embedding_function"] is None
    path = f"{DB}/collections/{collection['id']}"
    added = api.post(
        f"{path}/add", json={"ids": list(DOCUMENTS), "documents": list(DOCUMENTS.values())}
    )
    assert added.status_code == 201, added.text
    assert api.get(f"{DB}/collections/docs").json()["dimension"] == 384

    query = {
        "query_texts": ["a kitten purring", "spaghetti recipe", "space launch"],
        "n_results": 1,
    }
    result = api.post(f"{path}/query", json=query).json()
    assert result["ids"] == [["cat"], ["pasta"], ["rocket"]]


def test_stored_vectors_equal_the_official_clients(
    api: TestClient, built_model: Path, tmp_path: Path
) -> None:
    collection = create(api, "docs")
    path = f"{DB}/collections/{collection['id']}"
    api.post(f"{path}/upsert", json={"ids": list(DOCUMENTS), "documents": list(DOCUMENTS.values())})
    stored = api.post(f"{path}/get", json={"include": ["embeddings", "documents"]}).json()
    expected = client_vectors(built_model, tmp_path, stored["documents"])
    assert np.abs(np.array(stored["embeddings"], dtype=np.float32) - expected).max() < 1e-5


@pytest.mark.usefixtures("built_model")
def test_update_with_documents_re_embeds(api: TestClient) -> None:
    collection = create(api, "docs")
    path = f"{DB}/collections/{collection['id']}"
    api.post(f"{path}/add", json={"ids": ["x"], "documents": [DOCUMENTS["cat"]]})
    api.post(f"{path}/update", json={"ids": ["x"], "documents": [DOCUMENTS["rocket"]]})
    result = api.post(f"{path}/query", json={"query_texts": [DOCUMENTS["rocket"]]}).json()
    assert result["distances"][0][0] == pytest.approx(0.0, abs=1e-5)


def test_mixed_batches_are_rejected(api: TestClient) -> None:
    collection = create(api, "docs")
    body = {"ids": ["a", "b"], "embeddings": [[0.1] * 384, None], "documents": ["x", "y"]}
    response = api.post(f"{DB}/collections/{collection['id']}/add", json=body)
    assert response.status_code == 400
    assert "Mixed batches" in response.json()["message"]


def test_records_need_vectors_or_documents(api: TestClient) -> None:
    collection = create(api, "docs")
    body = {"ids": ["a", "b"], "documents": ["only one", None]}
    response = api.post(f"{DB}/collections/{collection['id']}/add", json=body)
    assert response.status_code == 400
    query = api.post(f"{DB}/collections/{collection['id']}/query", json={"n_results": 1})
    assert query.status_code == 400 and "query_texts" in query.json()["message"]


def test_client_side_functions_ask_for_vectors(api: TestClient) -> None:
    openai = {"type": "known", "name": "openai", "config": {}}
    for name, function in (("openai", openai), ("legacy", {"type": "legacy"})):
        collection = create(api, name, configuration={"embedding_function": function})
        response = api.post(
            f"{DB}/collections/{collection['id']}/add", json={"ids": ["a"], "documents": ["x"]}
        )
        assert response.status_code == 400, response.text
        assert "send embeddings" in response.json()["message"]


def test_unknown_functions_are_kept_and_need_vectors_at_write(api: TestClient) -> None:
    function = {"type": "known", "name": "no-such-model", "config": {"x": 1}}
    collection = create(api, "docs", configuration={"embedding_function": function})
    assert collection["configuration_json"]["embedding_function"] == function
    path = f"{DB}/collections/{collection['id']}"
    response = api.post(f"{path}/add", json={"ids": ["a"], "documents": ["x"]})
    assert response.status_code == 400
    assert "send embeddings" in response.json()["message"]
    added = api.post(f"{path}/add", json={"ids": ["a"], "embeddings": [[1.0, 2.0]]})
    assert added.status_code == 201


def test_missing_model_is_a_clear_400(tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = tmp_path_factory.mktemp("no-model")
    server = Server(
        tmp_path_factory.mktemp("server"), env={"CHROMA_SERVERLESS_MODEL_DIR": str(empty)}
    )
    try:
        with httpx.Client(base_url=server.url) as http:
            collection = http.post(f"{DB}/collections", json={"name": "docs"}).json()
            response = http.post(
                f"{DB}/collections/{collection['id']}/add", json={"ids": ["a"], "documents": ["x"]}
            )
        assert response.status_code == 400
        assert response.json()["error"] == "InvalidArgumentError"
        assert "chroma_serverless.embedding.build" in response.json()["message"]
    finally:
        server.stop()
    assert server.errors_logged() == []
