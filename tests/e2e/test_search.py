"""The Search API through the official client (sync and async) against both modes: dense,
sparse and BM25 knn, hybrid rank expressions (RRF and arithmetic), filters, group_by, paging and
select, each equal to an independent brute-force evaluation (tests/support/search_oracle.py); and
bad searches answered as 400s that say what is wrong."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from chromadb import (
    FtsIndexConfig,
    K,
    Knn,
    Rrf,
    Schema,
    Search,
    SparseVectorIndexConfig,
    StringInvertedIndexConfig,
)
from chromadb.base_types import SparseVector
from chromadb.errors import InvalidArgumentError
from chromadb.execution.expression.operator import GroupBy, MaxK, MinK, Val

from tests.factories import f32
from tests.support.search_oracle import SearchOracle
from tests.support.server import run_async

if TYPE_CHECKING:
    from pathlib import Path

    from chromadb.api import AsyncClientAPI, ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Space

    from tests.support.server import Server

pytestmark = pytest.mark.e2e

DB = "/api/v2/tenants/default_tenant/databases/default_database"
DIM = 8
ROWS = 48
VOCABULARY = 30
CATEGORIES = ("news", "blog", "paper")
WORDS = ("fox", "dog", "cat", "owl", "elk")


def sparse(rng: np.random.Generator) -> SparseVector:
    terms = sorted(int(t) for t in rng.choice(VOCABULARY, size=rng.integers(1, 6), replace=False))
    return SparseVector(terms, [float(v) for v in rng.uniform(0.1, 2.0, len(terms))])


def schema(bm25: bool = False, key: str = "sparse") -> Schema:
    return Schema().create_index(config=SparseVectorIndexConfig(bm25=bm25), key=key)


def populate(collection: Collection, rows: int = ROWS, seed: int = 0) -> None:
    """Rows in three writes; some lack a category, some a sparse vector."""
    rng = np.random.default_rng(seed)
    for start in range(0, rows, 16):
        ids = [f"r{i:03d}" for i in range(start, min(start + 16, rows))]
        metadatas: list[dict[str, Any]] = []
        for i in range(start, start + len(ids)):
            metadata: dict[str, Any] = {"rank": i % 5}
            if i % 11:
                metadata["category"] = CATEGORIES[i % 3]
            if i % 7:
                metadata["sparse"] = sparse(rng)
            metadatas.append(metadata)
        collection.add(
            ids=ids,
            embeddings=rng.normal(size=(len(ids), DIM)).astype(np.float32),
            documents=[f"doc {i} about the {WORDS[i % 5]}" for i in range(start, start + len(ids))],
            metadatas=metadatas,  # type: ignore[arg-type]
        )


def hybrid_collection(client: ClientAPI, bm25: bool = False) -> tuple[Collection, SearchOracle]:
    collection = client.create_collection("hybrid", schema=schema(bm25), embedding_function=None)
    populate(collection)
    bm25_keys = frozenset({"sparse"}) if bm25 else frozenset()
    return collection, SearchOracle.of(collection, bm25_keys=bm25_keys)


def dense(seed: int) -> list[float]:
    return [float(x) for x in np.random.default_rng(seed).normal(size=DIM)]


def sparse_query(seed: int) -> SparseVector:
    return sparse(np.random.default_rng(seed + 1000))


def assert_matches(collection: Collection, oracle: SearchOracle, search: Search) -> None:
    """The search's ids, order and scores equal brute force's."""
    search = search.select(K.SCORE)
    expected = oracle.search(search.to_dict())
    result = collection.search(search)
    assert result["ids"][0] == [i for i, _ in expected]
    assert result["scores"][0] == pytest.approx([s for _, s in expected], rel=1e-4, abs=1e-4)


# ------------------------------------------------------------------------ ranking


@pytest.mark.parametrize("space", ["l2", "cosine", "ip"])
def test_dense_search_equals_brute_force(client: ClientAPI, space: Space) -> None:
    collection = client.create_collection(
        "dense", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    populate(collection)
    oracle = SearchOracle.of(collection, space=space)
    for seed in range(4):
        assert_matches(collection, oracle, Search().rank(Knn(query=dense(seed), limit=10)))
    found = collection.search(Search().rank(Knn(query=dense(9), limit=100)).select(K.SCORE))
    assert len(found["ids"][0]) == ROWS  # the knn limit is a cap, never padded


@pytest.mark.parametrize("bm25", [False, True], ids=["sparse", "bm25"])
def test_sparse_search_equals_brute_force(client: ClientAPI, bm25: bool) -> None:
    collection, oracle = hybrid_collection(client, bm25)
    for seed in range(6):
        rank = Knn(query=sparse_query(seed), key="sparse", limit=12)
        assert_matches(collection, oracle, Search().rank(rank))
        assert_matches(collection, oracle, Search().where(K("rank") >= 2).rank(rank))


def test_bm25_weights_rare_terms_up(client: ClientAPI) -> None:
    collection = client.create_collection("bm25", schema=schema(bm25=True), embedding_function=None)
    # term 1 is in every record, term 2 in one: equal weights, but IDF makes term 2 decide
    collection.add(
        ids=["common", "rare", "other"],
        embeddings=f32([[0.0] * DIM] * 3),
        metadatas=[
            {"sparse": SparseVector([1], [1.0])},
            {"sparse": SparseVector([1, 2], [0.5, 0.5])},
            {"sparse": SparseVector([1, 3], [1.0, 1.0])},
        ],
    )
    found = collection.search(
        Search().rank(Knn(query=SparseVector([1, 2], [1.0, 1.0]), key="sparse")).select(K.SCORE)
    )
    assert found["ids"][0] == ["rare", "common", "other"]
    idf_common, idf_rare = np.log1p((3 - 3 + 0.5) / 3.5), np.log1p((3 - 1 + 0.5) / 1.5)
    assert found["scores"][0][0] == pytest.approx(1 - 0.5 * idf_common - 0.5 * idf_rare)


@pytest.mark.parametrize("bm25", [False, True], ids=["sparse", "bm25"])
def test_hybrid_rrf_equals_brute_force(client: ClientAPI, bm25: bool) -> None:
    collection, oracle = hybrid_collection(client, bm25)
    for seed in range(4):
        dense_rank = Knn(query=dense(seed), limit=20, return_rank=True)
        sparse_rank = Knn(query=sparse_query(seed), key="sparse", limit=20, return_rank=True)
        assert_matches(collection, oracle, Search().rank(Rrf([dense_rank, sparse_rank])))
        with_defaults = Rrf(
            [
                Knn(query=dense(seed), limit=10, return_rank=True, default=1000),
                Knn(query=sparse_query(seed), key="sparse", return_rank=True, default=1000),
            ],
            weights=[0.7, 0.3],
            k=30,
        )
        assert_matches(collection, oracle, Search().rank(with_defaults).limit(15))


@pytest.mark.parametrize(
    "expression",
    [
        lambda d, s: Knn(query=d) * 0.7 + Knn(query=s, key="sparse", default=2.0) * 0.3,
        lambda d, s: (Knn(query=d, limit=30) - Knn(query=s, key="sparse", default=1.0)).abs(),
        lambda d, s: (Knn(query=d, limit=30) / 10.0 + Val(1.0)).log().exp(),
        lambda d, s: Knn(query=d, limit=30).max(Knn(query=s, key="sparse", default=0.5)).min(6.0),
        lambda d, s: Val(2.0) * Knn(query=d, limit=25) / (Knn(query=s, key="sparse", limit=40) + 3),
    ],
    ids=["weighted-sum", "abs-difference", "log-exp", "clamped", "ratio"],
)
def test_rank_arithmetic_equals_brute_force(client: ClientAPI, expression: Any) -> None:
    collection, oracle = hybrid_collection(client)
    for seed in range(3):
        rank = expression(dense(seed), sparse_query(seed))
        assert_matches(collection, oracle, Search().rank(rank))


# ------------------------------------------------------------------------ filters and groups


@pytest.mark.parametrize(
    "where",
    [
        K("category") == "news",
        (K("category") == "blog") | (K("rank") < 1),
        K("category").not_in(["news", "paper"]),
        K.DOCUMENT.contains("fox"),
        K.DOCUMENT.not_contains("owl") & (K("rank") != 3),
        K.DOCUMENT.regex(r"doc 1\d about"),
        K.ID.is_in(["r001", "r005", "r017", "r030", "r041", "nope"]),
        K.ID.not_in(["r002", "r003"]) & (K("rank") >= 3),
    ],
    ids=["eq", "or", "nin", "contains", "not-contains", "regex", "id-in", "id-nin"],
)
def test_filtered_search_equals_brute_force(client: ClientAPI, where: Any) -> None:
    collection, oracle = hybrid_collection(client, bm25=True)
    rank = Rrf(
        [
            Knn(query=dense(1), limit=30, return_rank=True, default=100),
            Knn(query=sparse_query(1), key="sparse", limit=30, return_rank=True, default=100),
        ]
    )
    assert_matches(collection, oracle, Search().where(where).rank(rank))
    assert_matches(collection, oracle, Search().where(where).rank(Knn(query=dense(2), limit=8)))
    unranked = collection.search(Search().where(where))
    assert unranked["ids"][0] == [i for i, _ in oracle.search(Search().where(where).to_dict())]


@pytest.mark.parametrize(
    "group_by",
    [
        GroupBy(keys=K("category"), aggregate=MinK(keys=K.SCORE, k=2)),
        GroupBy(keys=[K("category"), K("rank")], aggregate=MinK(keys=K.SCORE, k=1)),
        GroupBy(keys=K("category"), aggregate=MaxK(keys=[K("rank"), K.SCORE], k=3)),
        GroupBy(keys=K("rank"), aggregate=MinK(keys=[K("category"), K.SCORE], k=2)),
    ],
    ids=["min-k", "two-keys", "max-k-tiebreak", "missing-values-first"],
)
def test_group_by_equals_brute_force(client: ClientAPI, group_by: GroupBy) -> None:
    collection, oracle = hybrid_collection(client)
    rank = Knn(query=dense(3), limit=40)
    assert_matches(collection, oracle, Search().rank(rank).group_by(group_by))
    assert_matches(collection, oracle, Search().rank(rank).group_by(group_by).limit(4, offset=2))


def test_limit_offset_and_every_select_key(client: ClientAPI) -> None:
    collection, oracle = hybrid_collection(client)
    rank = Knn(query=dense(4), limit=20)
    expected = oracle.search(Search().rank(rank).to_dict())
    stored = collection.get(include=["embeddings", "documents", "metadatas"])
    documents, embeddings, metadatas = (
        stored["documents"],
        stored["embeddings"],
        stored["metadatas"],
    )
    assert documents is not None and embeddings is not None and metadatas is not None
    by_id = {
        i: (d, e, m)
        for i, d, e, m in zip(stored["ids"], documents, embeddings, metadatas, strict=True)
    }
    page = collection.search(Search().rank(rank).limit(5, offset=3).select_all())
    ids = [i for i, _ in expected[3:8]]
    assert page["ids"] == [ids]
    assert page["documents"] == [[by_id[i][0] for i in ids]]
    assert np.allclose(page["embeddings"][0], [by_id[i][1] for i in ids])
    assert page["metadatas"] == [[by_id[i][2] for i in ids]]
    assert page["scores"][0] == pytest.approx([s for _, s in expected[3:8]], rel=1e-4)
    assert sorted(page["select"][0]) == ["#document", "#embedding", "#metadata", "#score"]

    some = collection.search(Search().rank(rank).limit(6).select("category", "nowhere"))
    assert some["ids"] == [[i for i, _ in expected[:6]]]
    assert (some["documents"], some["embeddings"], some["scores"]) == ([None], [None], [None])
    assert some["metadatas"] == [
        [
            {"category": by_id[i][2]["category"]} if "category" in by_id[i][2] else None
            for i, _ in expected[:6]
        ]
    ]
    only_ids = collection.search(Search().rank(rank).limit(2))
    assert only_ids["ids"] == [[i for i, _ in expected[:2]]]
    assert only_ids["metadatas"] == [None] and only_ids["select"] == [[]]
    assert collection.search(Search().rank(rank).limit(5, offset=40))["ids"] == [[]]


def test_a_batch_answers_each_search_in_order(client: ClientAPI) -> None:
    collection, oracle = hybrid_collection(client, bm25=True)
    batch = [
        Search().rank(Knn(query=dense(5), limit=5)).select(K.SCORE),
        Search().where(K("category") == "paper").limit(3).select(K.DOCUMENT),
        Search().rank(Knn(query=sparse_query(5), key="sparse", limit=4)).select(K.SCORE),
    ]
    found = collection.search(batch)
    for i, search in enumerate(batch):
        assert found["ids"][i] == [record_id for record_id, _ in oracle.search(search.to_dict())]
    assert found["documents"][0] is None and len(found["documents"][1]) == 3
    assert found["scores"][1] is None and len(found["scores"][2]) == 4


def test_sparse_vectors_round_trip_and_merge(client: ClientAPI) -> None:
    collection = client.create_collection("round", schema=schema(), embedding_function=None)
    vector = SparseVector([0, 7, 4_000_000_000], [0.25, -1.5, 3.0], labels=["a", "b", "c"])
    collection.add(
        ids=["a", "b"],
        embeddings=f32([[1.0] * DIM, [2.0] * DIM]),
        metadatas=[{"sparse": vector, "tag": "x"}, {"tag": "y"}],
    )
    assert collection.get(ids=["a"])["metadatas"] == [{"sparse": vector, "tag": "x"}]
    collection.update(ids=["a"], metadatas=[{"tag": "z"}])  # merge keeps the vector
    assert collection.get(ids=["a"])["metadatas"] == [{"sparse": vector, "tag": "z"}]
    collection.upsert(
        ids=["b"], embeddings=f32([[2.0] * DIM]), metadatas=[{"sparse": SparseVector([7], [2.0])}]
    )
    found = collection.search(
        Search().rank(Knn(query=SparseVector([7], [1.0]), key="sparse")).select(K.SCORE)
    )
    assert found["ids"] == [["b", "a"]]
    assert found["scores"][0] == pytest.approx([-1.0, 2.5])
    collection.update(ids=["a"], metadatas=[{"sparse": None}])  # removes it
    assert collection.get(ids=["a"])["metadatas"] == [{"tag": "z"}]
    found = collection.search(Search().rank(Knn(query=SparseVector([7], [1.0]), key="sparse")))
    assert found["ids"] == [["b"]]


def test_search_with_the_async_client(client: ClientAPI, server: Server) -> None:
    collection, oracle = hybrid_collection(client, bm25=True)
    searches = [
        Search().rank(
            Rrf(
                [
                    Knn(query=dense(6), return_rank=True),
                    Knn(query=sparse_query(6), key="sparse", return_rank=True),
                ]
            )
        ),
        Search().where(K.DOCUMENT.contains("cat")).rank(Knn(query=dense(7))).limit(3),
    ]
    expected = [[i for i, _ in oracle.search(s.to_dict())] for s in searches]

    async def workflow(aclient: AsyncClientAPI) -> None:
        acollection = await aclient.get_collection("hybrid")
        found = await acollection.search(searches)
        assert found["ids"] == expected
        with pytest.raises(InvalidArgumentError, match="indexing is disabled"):
            await acollection.search(Search().rank(Knn(query=SparseVector([1], [1.0]), key="rank")))

    run_async(server, workflow)


def test_an_empty_collection_finds_nothing(client: ClientAPI) -> None:
    collection = client.create_collection("empty", schema=schema(), embedding_function=None)
    found = collection.search(
        [
            Search().rank(Knn(query=dense(0))),
            Search().rank(Knn(query=sparse_query(0), key="sparse")),
        ]
    )
    assert found["ids"] == [[], []]


def test_non_finite_scores_answer_null(client: ClientAPI) -> None:
    collection = client.create_collection("odd", embedding_function=None)
    collection.add(ids=["a", "b"], embeddings=f32([[1.0, 0.0], [0.0, 1.0]]))
    inverse = collection.search(Search().rank(Val(1.0) / Knn(query=[1.0, 0.0])).select(K.SCORE))
    assert inverse["ids"] == [["b", "a"]]  # 1/2, then 1/0 = inf
    assert inverse["scores"] == [[0.5, None]]
    negative = collection.search(Search().rank((Knn(query=[1.0, 0.0]) - 5).log()).select(K.SCORE))
    assert negative["ids"] == [["a", "b"]] and negative["scores"] == [[None, None]]  # NaN


# ------------------------------------------------------------------------ errors


def test_schema_rules_are_invalid_argument_errors(client: ClientAPI) -> None:
    disabled = Schema().create_index(config=SparseVectorIndexConfig(), key="sparse")
    disabled.delete_index(config=StringInvertedIndexConfig(), key="secret")
    disabled.delete_index(config=FtsIndexConfig(), key="#document")
    collection = client.create_collection("rules", schema=disabled, embedding_function=None)
    populate(collection, rows=8)
    cases = [
        (
            Search().rank(Knn(query=SparseVector([1], [1.0]), key="category")),
            "'category' with type 'SparseVector' because indexing is disabled",
        ),
        (
            Search().rank(Knn(query=SparseVector([1], [1.0]))),
            "'#embedding' with type 'SparseVector'",
        ),
        (
            Search().where(K("secret") == "x"),
            "'secret' with type 'Str' because indexing is disabled",
        ),
        (Search().where(K.DOCUMENT.contains("fox")), "FTS indexing is disabled"),
        (Search().rank(Knn(query=[1.0, 2.0])), "dimension of 8, got 2"),
        (Search().rank(Knn(query=dense(0), key="sparse")), "Dense $knn searches #embedding"),
    ]
    for search, message in cases:
        with pytest.raises(InvalidArgumentError, match=message.replace("$", r"\$")):
            collection.search(search)
    assert collection.search(Search().where(K("secret") == 1))["ids"] == [[]]  # ints indexed


BAD = [
    ({"rank": {"$val": 1.0}}, "expected at least one $knn"),
    ({"rank": {"$knn": {"query": [1.0] * DIM}, "$val": 1}}, "exactly one operator"),
    ({"rank": {"$knnn": {"query": [1.0] * DIM}}}, "unknown rank operator '$knnn'"),
    ({"rank": {"$knn": {"limit": 3}}}, "missing field 'query'"),
    ({"rank": {"$knn": {"query": "text"}}}, "text queries are embedded by the client"),
    ({"rank": {"$knn": {"query": [1.0] * DIM, "limit": 0}}}, "limit to be an int between 1"),
    (
        {"rank": {"$knn": {"query": [1.0] * DIM, "return_rank": 1}}},
        "return_rank: expected a boolean",
    ),
    ({"rank": {"$knn": {"query": [1.0] * DIM, "k": 3}}}, "unknown field 'k'"),
    ({"rank": {"$sum": []}}, "$sum: expected a non-empty list"),
    ({"rank": {"$div": {"left": {"$val": 1}}}}, "'left' and 'right'"),
    ({"rank": {"$val": "x"}}, "$val: expected a finite number"),
    (
        {
            "rank": {
                "$knn": {
                    "query": {"#type": "sparse_vector", "indices": [2, 1], "values": [1, 1]},
                    "key": "sparse",
                }
            }
        },
        "strictly ascending",
    ),
    ({"filter": {"#score": {"$gt": 1}}}, "Expected where key to be a metadata key"),
    ({"filter": {"#id": {"$gt": "a"}}}, "operator for #id"),
    ({"limit": {"offset": -1}}, "offset to be an int between 0"),
    ({"select": {"keys": ["#nope"]}}, "unknown key '#nope'"),
    (
        {"group_by": {"keys": ["category"], "aggregate": {"$min_k": {"keys": ["#score"], "k": 1}}}},
        "grouping needs a rank",
    ),
    (
        {
            "rank": {"$knn": {"query": [1.0] * DIM}},
            "group_by": {
                "keys": ["category"],
                "aggregate": {"$top_k": {"keys": ["#score"], "k": 1}},
            },
        },
        "unknown aggregate '$top_k'",
    ),
    ({"selct": {}}, "unknown field 'selct'"),
]


@pytest.mark.parametrize(("payload", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_searches_are_400s_that_say_why(
    client: ClientAPI, server: Server, payload: dict[str, Any], message: str
) -> None:
    collection, _ = hybrid_collection(client)
    with httpx.Client(base_url=server.url) as http:
        response = http.post(
            f"{DB}/collections/{collection.id}/search", json={"searches": [payload]}
        )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "InvalidArgumentError"
    assert message in body["message"]
    assert "searches[0]" in body["message"] or "where" in body["message"]


# ------------------------------------------------------------------------ the README's example


def test_the_readmes_hybrid_example(
    client: ClientAPI, built_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's example as written: a BM25 schema fed by ``add(documents=...)``, dense and
    sparse vectors computed by the client, a filtered RRF hybrid search with text queries."""
    from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    from chroma_serverless.embedding.model import MODEL_FILES

    target = tmp_path / ONNXMiniLM_L6_V2.EXTRACTED_FOLDER_NAME  # the model, where the client looks
    target.mkdir()
    for name in MODEL_FILES:
        shutil.copyfile(built_model / name, target / name)
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "DOWNLOAD_PATH", tmp_path)

    bm25 = ChromaBm25EmbeddingFunction()
    schema = Schema().create_index(
        config=SparseVectorIndexConfig(
            source_key=K.DOCUMENT,  # type: ignore[arg-type]  # a Key is taken (the hint says str)
            embedding_function=bm25,
            bm25=True,
        ),
        key="sparse_embedding",
    )
    docs = client.create_collection("articles", schema=schema)
    docs.add(
        ids=["fox", "ml", "owl"],
        documents=[
            "The quick brown fox jumps over the lazy dog",
            "Machine learning is a subset of artificial intelligence",
            "An owl hunts at night, quick and silent",
        ],
        metadatas=[{"topic": "animals"}, {"topic": "tech"}, {"topic": "animals"}],
    )
    hybrid = (
        Search()
        .where(K("topic") == "animals")
        .rank(
            Rrf(
                [
                    Knn(query="quick fox", return_rank=True, default=50, limit=50),
                    Knn(
                        query="quick fox",
                        key="sparse_embedding",
                        return_rank=True,
                        default=50,
                        limit=50,
                    ),
                ]
            )
        )
        .limit(10)
        .select(K.DOCUMENT, K.SCORE, "topic")
    )
    rows = docs.search(hybrid).rows()[0]

    assert [row["id"] for row in rows] == ["fox", "owl"]  # both terms; only "quick" in the owl's
    assert all(row["metadata"] == {"topic": "animals"} for row in rows)
    stored = docs.get(ids=["fox"], include=["metadatas"])["metadatas"]
    sent = bm25(["The quick brown fox jumps over the lazy dog"])[0]
    assert stored is not None
    sparse = stored[0]["sparse_embedding"]
    assert isinstance(sparse, SparseVector) and sparse.indices == sent.indices
    assert sparse.values == pytest.approx(sent.values, rel=1e-7)  # f32
    oracle = SearchOracle.of(docs, bm25_keys=frozenset({"sparse_embedding"}))
    dense_query = np.asarray(ONNXMiniLM_L6_V2()(["quick fox"])[0], dtype=np.float32)
    embedded = hybrid.rank(
        Rrf(
            [
                Knn(query=dense_query, return_rank=True, default=50, limit=50),
                Knn(
                    query=bm25.embed_query(["quick fox"])[0],
                    key="sparse_embedding",
                    return_rank=True,
                    default=50,
                    limit=50,
                ),
            ]
        )
    )
    expected = oracle.search(embedded.to_dict())
    assert [row["id"] for row in rows] == [i for i, _ in expected]
    assert [row["score"] for row in rows] == pytest.approx([s for _, s in expected], rel=1e-5)
