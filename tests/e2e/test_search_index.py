"""Search above the index threshold, through the official client against both modes: once the
server's own maintenance has indexed the collection (IVF-PQ for the dense vectors, the inverted
index for the sparse ones), dense and hybrid searches keep recall@10 >= 0.95 against brute
force and sparse (BM25) search stays exact, and a record written afterwards is found at once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from chromadb import K, Knn, Rrf, Schema, Search, SparseVectorIndexConfig
from chromadb.base_types import SparseVector

from tests.support.search_oracle import SearchOracle
from tests.support.server import Server, chroma_client, serve_mode

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chromadb.api.models.Collection import Collection

pytestmark = pytest.mark.e2e

ROWS, DIM, VOCABULARY, QUERIES = 3000, 16, 200, 20
ENV = {
    "CHROMA_SERVERLESS_INDEX_THRESHOLD": "1000",
    "CHROMA_SERVERLESS_INDEX_ROWS_PER_PARTITION": "500",
    "CHROMA_SERVERLESS_INDEX_MEMORY_ROWS": "0",  # no in-memory snapshot: the indexes serve
}


@pytest.fixture(scope="module", params=["embedded", "aws-local"])
def indexing_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from serve_mode(request.param, tmp_path_factory.mktemp("indexing"), ENV)


def clustered(rows: int, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(40, DIM))
    data = centers[rng.integers(0, 40, rows)] + 0.3 * rng.normal(size=(rows, DIM))
    unit: np.ndarray[Any, Any] = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(
        np.float32
    )
    return unit


def sparse(rng: np.random.Generator) -> SparseVector:
    terms = sorted({int(t) for t in rng.zipf(1.2, int(rng.integers(2, 12))) % VOCABULARY})
    return SparseVector(terms, [float(v) for v in rng.uniform(0.2, 2.0, len(terms))])


def indexed(collection: Collection, rows: int, timeout: float = 180) -> None:
    """Wait for the server's maintenance to cover every row (vector and sparse indexes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = collection.get_indexing_status()
        if status.total_ops == rows and status.num_unindexed_ops == 0:
            return
        time.sleep(1)
    pytest.fail(f"not indexed after {timeout}s: {collection.get_indexing_status()}")


def recall(found: list[str], expected: list[str]) -> float:
    return len(set(found) & set(expected)) / max(1, len(expected))


def test_search_above_the_index_threshold(indexing_server: Server) -> None:
    client = chroma_client(indexing_server)
    client.reset()
    schema = Schema().create_index(config=SparseVectorIndexConfig(bm25=True), key="sparse")
    collection = client.create_collection(
        "big", schema=schema, configuration=None, embedding_function=None
    )
    rng = np.random.default_rng(1)
    vectors = clustered(ROWS, 1)
    for start in range(0, ROWS, 500):
        ids = [f"r{i}" for i in range(start, start + 500)]
        metadatas = [{"sparse": sparse(rng), "part": i % 3} for i in range(start, start + 500)]
        collection.add(ids=ids, embeddings=vectors[start : start + 500], metadatas=metadatas)  # type: ignore[arg-type]
    indexed(collection, ROWS)
    oracle = SearchOracle.of(collection, bm25_keys=frozenset({"sparse"}))
    queries, query_rng = clustered(QUERIES, 2), np.random.default_rng(3)
    dense_recall, hybrid_recall = [], []
    for query in queries:
        terms = sparse(query_rng)
        dense = Search().rank(Knn(query=query.tolist(), limit=10)).limit(10)
        hybrid = Search().rank(
            Rrf(
                [
                    Knn(query=query.tolist(), limit=50, return_rank=True, default=50),
                    Knn(query=terms, key="sparse", limit=50, return_rank=True, default=50),
                ]
            )
        )
        keyword = Search().where(K("part") != 1).rank(Knn(query=terms, key="sparse", limit=10))
        found = collection.search([dense, hybrid.limit(10), keyword.select(K.SCORE)])
        dense_recall.append(recall(found["ids"][0], [i for i, _ in oracle.search(dense.to_dict())]))
        expected = oracle.search(hybrid.limit(10).to_dict())
        hybrid_recall.append(recall(found["ids"][1], [i for i, _ in expected]))
        exact = oracle.search(keyword.to_dict())
        assert found["ids"][2] == [i for i, _ in exact]
        assert found["scores"][2] == pytest.approx([s for _, s in exact], rel=1e-4)
    assert np.mean(dense_recall) >= 0.95
    assert np.mean(hybrid_recall) >= 0.95

    # written after the indexes: found by the next search, dense and sparse alike
    unique = SparseVector([VOCABULARY + 7], [1.0])
    collection.add(ids=["late"], embeddings=[queries[0].tolist()], metadatas=[{"sparse": unique}])
    late = collection.search(
        [
            Search().rank(Knn(query=queries[0].tolist(), limit=1)),
            Search().rank(Knn(query=unique, key="sparse", limit=1)),
        ]
    )
    assert late["ids"] == [["late"], ["late"]]


def test_a_fork_searches_with_its_sources_indexes(indexing_server: Server) -> None:
    """A fork of an indexed collection has its indexes at once (IVF-PQ and the sparse index,
    nothing unindexed), and its BM25 search stays exact as both sides are written."""
    client = chroma_client(indexing_server)
    client.reset()
    schema = Schema().create_index(config=SparseVectorIndexConfig(bm25=True), key="sparse")
    source = client.create_collection("source", schema=schema, embedding_function=None)
    rows, rng = 1200, np.random.default_rng(5)
    vectors = clustered(rows + 10, 5)
    for start in range(0, rows, 600):
        ids = [f"r{i}" for i in range(start, start + 600)]
        metadatas = [{"sparse": sparse(rng), "part": i % 3} for i in range(start, start + 600)]
        source.add(ids=ids, embeddings=vectors[start : start + 600], metadatas=metadatas)  # type: ignore[arg-type]
    indexed(source, rows)

    fork = source.fork("fork")

    status = fork.get_indexing_status()
    assert (status.total_ops, status.num_unindexed_ops) == (rows, 0)
    fork.add(
        ids=[f"f{i}" for i in range(10)],
        embeddings=vectors[rows:],
        metadatas=[{"sparse": sparse(rng), "part": 0} for _ in range(10)],
    )
    fork.delete(ids=[f"r{i}" for i in range(0, 300, 2)])
    source.update(ids=["r1", "r3"], metadatas=[{"sparse": SparseVector([1], [1.0])}] * 2)
    query_rng = np.random.default_rng(6)
    for side in (fork, source):
        oracle = SearchOracle.of(side, bm25_keys=frozenset({"sparse"}))
        for _ in range(5):
            keyword = (
                Search()
                .where(K("part") != 1)
                .rank(Knn(query=sparse(query_rng), key="sparse", limit=10))
            )
            found = side.search(keyword.select(K.SCORE))
            exact = oracle.search(keyword.to_dict())
            assert found["ids"][0] == [i for i, _ in exact]
            assert found["scores"][0] == pytest.approx([s for _, s in exact], rel=1e-4)
