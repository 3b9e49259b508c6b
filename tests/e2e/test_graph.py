"""Queries answered by the in-memory HNSW graph, through the official client (sync and async)
against both modes: once the server logs a collection's graph built, queries with no filter or a
filter keeping most rows (the graph) and with a selective filter (the IVF partitions) find the
rows of an exact brute-force answer (recall@10 >= 0.95) with their exact distances, in
Chroma's convention; and rows added, deleted or updated afterwards show in the next query (the
graph stays, rows written since the read are searched beside it)."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from tests.support.server import Server, chroma_client, run_async, serve_mode

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chromadb.api import AsyncClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Include, Metadata, QueryResult, Space, Where

pytestmark = pytest.mark.e2e

ROWS, DIM, BATCH, QUERIES, K = 4000, 32, 1000, 20, 10
ENV = {
    # More than MEMORY_ROWS rows: read in the background at the second query; at least
    # THRESHOLD: partitioned, then given a graph. A filter matching at most THRESHOLD rows is
    # answered exactly, so the ~10 % filter (~400 rows) must exceed it to reach the partitions.
    "CHROMA_SERVERLESS_INDEX_MEMORY_ROWS": "100",
    "CHROMA_SERVERLESS_INDEX_THRESHOLD": "200",
    # The maintainer's IVF-PQ build and compaction commit new table versions: the snapshot
    # holding the graph would be stale and queries would go to the engine until a new one is
    # read. Without it the graph answers every query of the test.
    "CHROMA_SERVERLESS_MAINTENANCE": "off",
}
COMMON: Where = {"common": True}  # ~70 % of the rows: the graph answers
RARE: Where = {"rare": True}  # ~10 %: the partitions answer (at this size, probing them all)
WHERES: tuple[Where | None, ...] = (None, COMMON, RARE)
INCLUDE: Include = ["metadatas", "distances"]
GRAPH_BUILT = re.compile(r"graph of (\S+) built: (\d+) rows in [\d.]+ s")


@pytest.fixture(scope="module", params=["embedded", "aws-local"])
def graph_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from serve_mode(request.param, tmp_path_factory.mktemp("graph"), ENV)


class Written:
    """What the collection holds, as the test wrote it: the source of the exact answers."""

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray[Any, Any]] = {}
        self.metadatas: dict[str, Metadata] = {}

    def add(self, ids: list[str], vectors: np.ndarray[Any, Any], metadatas: list[Metadata]) -> None:
        self.vectors.update(zip(ids, vectors.astype(np.float64), strict=True))
        self.metadatas.update(zip(ids, metadatas, strict=True))

    def delete(self, ids: list[str]) -> None:
        for i in ids:
            del self.vectors[i], self.metadatas[i]

    def exact(
        self, query: np.ndarray[Any, Any], space: Space, where: Where | None
    ) -> dict[str, float]:
        """Every live row the filter keeps, with its exact distance to ``query``."""
        ids = [i for i, m in self.metadatas.items() if where is None or _keeps(m, where)]
        distances = _distances(np.stack([self.vectors[i] for i in ids]), query, space)
        return dict(zip(ids, distances.tolist(), strict=True))

    def nearest(self, query: np.ndarray[Any, Any], space: Space, where: Where | None) -> list[str]:
        exact = self.exact(query, space, where)
        return sorted(exact, key=exact.__getitem__)[:K]


def _keeps(metadata: Metadata, where: Where) -> bool:
    return all(metadata[key] == value for key, value in where.items())


def _distances(vectors: np.ndarray[Any, Any], query: np.ndarray[Any, Any], space: Space) -> Any:
    """Chroma's distances: squared L2, ``1 - cos``, ``1 - dot``."""
    query = query.astype(np.float64)
    if space == "l2":
        return ((vectors - query) ** 2).sum(axis=1)
    if space == "ip":
        return 1 - vectors @ query
    return 1 - vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))


def graph_rows(server: Server, collection_id: str, timeout: float = 60) -> int:
    """The rows of the collection's graph, once the server logs it built."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for match in GRAPH_BUILT.finditer(server.log.read_text()):
            if match.group(1) == collection_id:
                return int(match.group(2))
        time.sleep(0.1)
    pytest.fail(f"no graph of {collection_id} after {timeout}s:\n{server.log.read_text()}")


def answers(
    server: Server, collection: Collection, queries: np.ndarray[Any, Any]
) -> list[tuple[Where | None, QueryResult]]:
    """Each filter's answers to ``queries``, from the sync client and from the async one."""
    found = [
        (
            where,
            collection.query(query_embeddings=queries, n_results=K, where=where, include=INCLUDE),
        )
        for where in WHERES
    ]

    async def workflow(client: AsyncClientAPI) -> list[QueryResult]:
        same = await client.get_collection(collection.name)
        return [
            await same.query(query_embeddings=queries, n_results=K, where=where, include=INCLUDE)
            for where in WHERES
        ]

    return found + list(zip(WHERES, run_async(server, workflow), strict=True))


def check(
    found: QueryResult,
    written: Written,
    queries: np.ndarray[Any, Any],
    space: Space,
    where: Where | None,
) -> None:
    """Live rows that pass the filter, with their current metadata and exact distances in
    ascending order; most of the exact answer's rows."""
    assert found["distances"] is not None and found["metadatas"] is not None
    recalls = []
    for query, ids, distances, metadatas in zip(
        queries, found["ids"], found["distances"], found["metadatas"], strict=True
    ):
        exact = written.exact(query, space, where)
        assert len(ids) == K
        assert set(ids) <= set(written.vectors), f"deleted rows: {set(ids) - set(written.vectors)}"
        assert set(ids) <= set(exact), f"rows outside {where}: {set(ids) - set(exact)}"
        assert metadatas == [written.metadatas[i] for i in ids]
        assert distances == pytest.approx([exact[i] for i in ids], rel=1e-4, abs=1e-4)
        assert distances == sorted(distances)
        best = sorted(exact, key=exact.__getitem__)[:K]
        recalls.append(len(set(ids) & set(best)) / K)
    assert np.mean(recalls) >= 0.95, (where, recalls)


def planted(query: np.ndarray[Any, Any], space: Space) -> np.ndarray[Any, Any]:
    """A row nearest to ``query`` by far: the query itself (distance 0), or for ``ip`` (where
    ``1 - dot`` has no floor) the query scaled well past every other row's dot product."""
    return query * 10 if space == "ip" else query


@pytest.mark.parametrize("space", ["l2", "cosine", "ip"])
def test_queries_answered_by_the_graph(graph_server: Server, space: Space) -> None:
    # GIVEN a collection large enough for a graph, read and built after two queries
    collection = chroma_client(graph_server).create_collection(
        f"graph-{space}", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    rng = np.random.default_rng(7)
    ids = [f"r{i}" for i in range(ROWS)]
    vectors = rng.normal(size=(ROWS, DIM)).astype(np.float32)
    metadatas: list[Metadata] = [
        {"common": bool(a < 0.7), "rare": bool(b < 0.1)} for a, b in rng.random((ROWS, 2))
    ]
    for start in range(0, ROWS, BATCH):
        end = start + BATCH
        collection.add(
            ids=ids[start:end], embeddings=vectors[start:end], metadatas=metadatas[start:end]
        )
    written = Written()
    written.add(ids, vectors, metadatas)
    queries = np.random.default_rng(8).normal(size=(QUERIES, DIM)).astype(np.float32)
    for _ in range(2):  # the engine answers both; the second starts the background read
        collection.query(query_embeddings=queries[:1], n_results=K)
    assert graph_rows(graph_server, str(collection.id)) == ROWS

    # THEN every filter finds the exact answer's rows, sync and async
    before = answers(graph_server, collection, queries)
    for where, found in before:
        check(found, written, queries, space, where)

    # WHEN rows are added at three queries, top results of three others deleted, and the
    # nearest common row of another leaves the common filter
    doomed = list(dict.fromkeys(i for j in (3, 4, 5) for i in before[0][1]["ids"][j][:2]))
    moved = written.nearest(queries[6], space, COMMON)[0]
    assert moved not in doomed
    new = [f"new{j}" for j in range(3)]
    new_vectors = np.stack([planted(queries[j], space) for j in range(3)])
    new_metadatas: list[Metadata] = [{"common": True, "rare": True}] * 3
    collection.add(ids=new, embeddings=new_vectors, metadatas=new_metadatas)
    written.add(new, new_vectors, new_metadatas)
    collection.delete(ids=doomed)
    written.delete(doomed)
    left: Metadata = {"common": False, "rare": written.metadatas[moved]["rare"]}
    collection.update(ids=[moved], metadatas=[left])
    written.metadatas[moved] = left
    assert collection.count() == ROWS + 3 - len(doomed)

    # THEN the next queries find the added rows first, never the deleted ones, and the
    # updated row by its new metadata
    for where, found in answers(graph_server, collection, queries):
        check(found, written, queries, space, where)
        assert [found["ids"][j][0] for j in range(3)] == new
        if space != "ip":
            assert found["distances"] is not None
            assert [found["distances"][j][0] for j in range(3)] == pytest.approx([0] * 3, abs=1e-4)
        if where is None:
            assert moved in found["ids"][6]
        elif where == COMMON:
            assert moved not in found["ids"][6]
