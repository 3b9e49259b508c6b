"""Input built to escape storage prefixes or exhaust memory gets a 4xx Chroma error, and nothing
reaches storage; CORS is off unless configured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from chroma_serverless.settings import Settings
from tests.support.app import app_of

if TYPE_CHECKING:
    from pathlib import Path

    from chroma_serverless.service.service import Service

API = "/api/v2"
DB = f"{API}/tenants/default_tenant/databases/default_database"


def assert_rejected(response: Any, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "message"}


@pytest.mark.parametrize(
    "name",
    ["..", ".", "a/b", "../../etc", "a\\b", "tab\there", "nul\x00", "x#y", " pad", "x" * 513],
)
def test_tenant_and_database_names_that_could_escape_are_rejected(
    api: TestClient, name: str
) -> None:
    assert_rejected(api.post(f"{API}/tenants", json={"name": name}))
    assert_rejected(api.post(f"{API}/tenants/default_tenant/databases", json={"name": name}))
    assert [d["name"] for d in api.get(f"{API}/tenants/default_tenant/databases").json()] == [
        "default_database"
    ]


@pytest.mark.parametrize("name", ["../x", "a/../../b", "..abc", "abc..", "a\nb", "%2e%2e"])
def test_collection_names_that_could_escape_are_rejected(api: TestClient, name: str) -> None:
    assert_rejected(api.post(f"{DB}/collections", json={"name": name}))
    assert api.get(f"{DB}/collections_count").json() == 0


def test_encoded_traversal_in_the_path_finds_nothing(api: TestClient) -> None:
    for path in (f"{API}/tenants/%2E%2E", f"{API}/tenants/..%2Fdefault_tenant"):
        assert_rejected(api.get(path), 404)


def test_oversized_metadata_keys_are_rejected(api: TestClient) -> None:
    collection = api.post(f"{DB}/collections", json={"name": "docs"}).json()
    body = {"ids": ["a"], "embeddings": [[1.0]], "metadatas": [{"k" * 257: 1}]}
    assert_rejected(api.post(f"{DB}/collections/{collection['id']}/add", json=body))


def test_deeply_nested_filters_are_rejected_before_reaching_storage(api: TestClient) -> None:
    collection = api.post(f"{DB}/collections", json={"name": "docs"}).json()
    path = f"{DB}/collections/{collection['id']}/get"
    for depth in (100, 100_000):
        where = '{"$or": [' * depth + '{"k": 1}' + "]}" * depth
        document = '{"$and": [' * depth + '{"$contains": "x"}' + "]}" * depth
        for body in (f'{{"where": {where}}}', f'{{"where_document": {document}}}'):
            response = api.post(path, content=body, headers={"content-type": "application/json"})
            assert_rejected(response)


def test_more_records_than_the_batch_limit_are_413(api: TestClient) -> None:
    collection = api.post(f"{DB}/collections", json={"name": "docs"}).json()
    ids = [f"id{i}" for i in range(5462)]
    body = {"ids": ids, "embeddings": [[0.5]] * len(ids)}
    response = api.post(f"{DB}/collections/{collection['id']}/add", json=body)
    assert_rejected(response, 413)
    assert response.json()["error"] == "BatchSizeExceededError"


def test_bodies_over_the_limit_are_refused_without_being_parsed(
    service: Service, tmp_path: Path
) -> None:
    app = app_of(service, Settings(max_body_bytes=1000))
    with TestClient(app) as api:
        response = api.post(
            f"{DB}/collections", content=b"[" * 5000, headers={"content-type": "application/json"}
        )
        assert_rejected(response, 413)


def test_cors_is_off_by_default(api: TestClient) -> None:
    response = api.get(f"{API}/heartbeat", headers={"Origin": "https://example.com"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_configured_origins(service: Service) -> None:
    settings = Settings(cors_origins=("https://app.example.com",))
    app = app_of(service, settings)
    with TestClient(app) as api:
        preflight = api.options(
            f"{API}/heartbeat",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        other = api.get(f"{API}/heartbeat", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers
