"""Several OS processes on one collection in S3 (moto's server over HTTP), as Lambda runs them:
no lost writes, no duplicate ids, and a write acknowledged by one is visible to the next read of
another. Also several processes creating one collection in the DynamoDB catalog."""

from __future__ import annotations

import multiprocessing
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.catalog.dynamodb import DynamoDbCatalog
from chroma_serverless.errors import UniqueConstraintError
from chroma_serverless.records import LanceRecordStore
from chroma_serverless.types import Collection, GetRequest, RecordBatch
from tests.conftest import new_catalog_table, s3_storage_options

if TYPE_CHECKING:
    from tests.conftest import Moto

WRITERS = 3
BATCHES = 4
SHARED = [f"shared{i}" for i in range(20)]


def collection() -> Collection:
    return Collection(str(uuid.uuid4()), "c", "t", "d", None, {"hnsw": {"space": "l2"}}, 4)


def vectors(n: int, seed: int) -> Any:
    return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


def write(uri: str, options: dict[str, str], target: Collection, writer: int) -> int:
    """One process: appends its own ids, and upserts ids every writer upserts."""
    store = LanceRecordStore(uri, options)
    for batch in range(BATCHES):
        ids = [f"w{writer}-b{batch}-{i}" for i in range(25)]
        store.add(target, RecordBatch(ids=ids, embeddings=vectors(len(ids), writer * 100 + batch)))
        metadatas: list[Any] = [{"writer": writer}] * len(SHARED)
        store.upsert(
            target,
            RecordBatch(ids=SHARED, embeddings=vectors(len(SHARED), batch), metadatas=metadatas),
        )
    return writer


def read_ids(uri: str, options: dict[str, str], target: Collection) -> list[str]:
    return LanceRecordStore(uri, options).get(target, GetRequest(include=())).ids


def create(endpoint: str, table: str, name: str) -> str:
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    catalog = DynamoDbCatalog(client, table)
    try:
        catalog.create_collection(
            Collection(str(uuid.uuid4()), name, "default_tenant", "default_database", None, {}),
            get_or_create=False,
        )
    except UniqueConstraintError:
        return "conflict"
    return "created"


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(moto: Moto, bucket: str) -> None:
    uri, options = f"s3://{bucket}/{uuid.uuid4().hex}", s3_storage_options(moto)
    target = collection()
    LanceRecordStore(uri, options).add(target, RecordBatch(ids=["seed"], embeddings=vectors(1, 0)))

    with multiprocessing.get_context("spawn").Pool(WRITERS) as pool:
        done = pool.starmap(write, [(uri, options, target, w) for w in range(WRITERS)])

    assert sorted(done) == list(range(WRITERS))
    ids = read_ids(uri, options, target)
    expected = {"seed", *SHARED} | {
        f"w{w}-b{b}-{i}" for w in range(WRITERS) for b in range(BATCHES) for i in range(25)
    }
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert set(ids) == expected


def test_a_write_is_visible_to_the_next_read_of_another_process(moto: Moto, bucket: str) -> None:
    uri, options = f"s3://{bucket}/{uuid.uuid4().hex}", s3_storage_options(moto)
    target = collection()
    here = LanceRecordStore(uri, options)
    here.add(target, RecordBatch(ids=["first"], embeddings=vectors(1, 1)))
    assert here.get(target, GetRequest(include=())).ids == ["first"]  # warm handle in this process

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pool.apply(write, (uri, options, target, 7))  # acknowledged when it returns
        assert len(here.get(target, GetRequest(include=())).ids) == 1 + BATCHES * 25 + len(SHARED)

        here.add(target, RecordBatch(ids=["last"], embeddings=vectors(1, 2)))
        assert "last" in pool.apply(read_ids, (uri, options, target))


def test_processes_creating_one_collection_yield_one(moto: Moto) -> None:
    table = new_catalog_table(moto)
    name = f"race-{uuid.uuid4().hex[:8]}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        outcomes = pool.starmap(create, [(moto.endpoint, table, name)] * 8)
    assert sorted(outcomes) == ["conflict"] * 7 + ["created"]
