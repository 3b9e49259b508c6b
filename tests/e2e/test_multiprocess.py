"""Several OS processes on one collection in S3 (moto's server over HTTP), as Lambda runs them:
no lost writes, no duplicate ids, and a write acknowledged by one is visible to the next read of
another (also in a local directory). Also several processes creating one collection in the
DynamoDB catalog, and several server processes on one table and bucket introducing the same new
metadata keys at once."""

from __future__ import annotations

import functools
import multiprocessing
import threading
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from chroma_serverless.catalog.dynamodb.catalog import DynamoDbCatalog
from chroma_serverless.errors import UniqueConstraintError
from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.types import Collection, GetRequest, RecordBatch
from tests import factories
from tests.factories import vectors
from tests.support.moto import new_catalog_table, records_place, s3_storage_options
from tests.support.server import Server

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.moto import Moto

WRITERS = 3
BATCHES = 4
SHARED = [f"shared{i}" for i in range(20)]


def write(uri: str, options: dict[str, str], target: Collection, writer: int) -> int:
    """One process: appends its own ids, and upserts ids every writer upserts."""
    store = LanceRecordStore(uri, options)
    for batch in range(BATCHES):
        ids = [f"w{writer}-b{batch}-{i}" for i in range(25)]
        store.add(
            target,
            RecordBatch(
                ids=ids, embeddings=vectors(len(ids), dimension=4, seed=writer * 100 + batch)
            ),
        )
        metadatas: list[Any] = [{"writer": writer}] * len(SHARED)
        store.upsert(
            target,
            RecordBatch(
                ids=SHARED,
                embeddings=vectors(len(SHARED), dimension=4, seed=batch),
                metadatas=metadatas,
            ),
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
            factories.collection(name=name, configuration={}),
            get_or_create=False,
        )
    except UniqueConstraintError:
        return "conflict"
    return "created"


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(moto: Moto, bucket: str) -> None:
    uri, options = f"s3://{bucket}/{uuid.uuid4().hex}", s3_storage_options(moto)
    target = factories.collection(dimension=4)
    LanceRecordStore(uri, options).add(
        target, RecordBatch(ids=["seed"], embeddings=vectors(1, dimension=4, seed=0))
    )

    with multiprocessing.get_context("spawn").Pool(WRITERS) as pool:
        done = pool.starmap(write, [(uri, options, target, w) for w in range(WRITERS)])

    assert sorted(done) == list(range(WRITERS))
    ids = read_ids(uri, options, target)
    expected = {"seed", *SHARED} | {
        f"w{w}-b{b}-{i}" for w in range(WRITERS) for b in range(BATCHES) for i in range(25)
    }
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert set(ids) == expected


@pytest.mark.parametrize("storage", ["s3", "local"])
def test_a_write_is_visible_to_the_next_read_of_another_process(
    storage: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """On S3 the engine checks the version; in a local directory the manifests' names do."""
    uri, options = records_place(storage, request, tmp_path)
    target = factories.collection(dimension=4)
    here = LanceRecordStore(uri, options)
    here.add(target, RecordBatch(ids=["first"], embeddings=vectors(1, dimension=4, seed=1)))
    assert here.get(target, GetRequest(include=())).ids == ["first"]  # warm handle in this process

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pool.apply(write, (uri, options, target, 7))  # acknowledged when it returns
        assert len(here.get(target, GetRequest(include=())).ids) == 1 + BATCHES * 25 + len(SHARED)

        here.add(target, RecordBatch(ids=["last"], embeddings=vectors(1, dimension=4, seed=2)))
        assert "last" in pool.apply(read_ids, (uri, options, target))


def test_processes_creating_one_collection_yield_one(moto: Moto) -> None:
    table = new_catalog_table(moto)
    name = f"race-{uuid.uuid4().hex[:8]}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        outcomes = pool.starmap(create, [(moto.endpoint, table, name)] * 8)
    assert sorted(outcomes) == ["conflict"] * 7 + ["created"]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_late_creation_of_the_table_keeps_the_records_written_before_it(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two processes writing a new collection's first records both find no table; the one
    whose creation commits last lands on top of the other's table as an overwrite (what
    LanceDB does with a creation that lost the race), and must not wipe what was written."""
    uri, options = records_place(where, request, tmp_path)
    target = factories.collection(dimension=4)
    first, late = LanceRecordStore(uri, options), LanceRecordStore(uri, options)
    first.add(
        target,
        RecordBatch(
            ids=["a", "b"], embeddings=vectors(2, dimension=4, seed=1), metadatas=[{"k": 1}] * 2
        ),
    )
    create = late._tables.db.create_table
    late._tables.db.create_table = functools.partial(create, mode="overwrite")  # type: ignore[method-assign]

    late._tables._create(target.id, 4)  # the late creator, after its look for the table found none
    late.add(target, RecordBatch(ids=["c"], embeddings=vectors(1, dimension=4, seed=2)))

    stored = first.get(target, GetRequest(include=("metadatas",)))
    assert sorted(zip(stored.ids, stored.metadatas or [], strict=True)) == [
        ("a", {"k": 1}),
        ("b", {"k": 1}),
        ("c", None),
    ]


WRITERS_OF_KEYS, KEY_ROUNDS, KEY_ROWS = 6, 6, 5
DATABASE = "/api/v2/tenants/default_tenant/databases/default_database"


def write_new_keys_at_once(urls: list[str], name: str) -> None:
    """Six writers spread over ``urls`` (adds and upserts); every round, all of them introduce
    the same new keys at the same moment. Asserts no write failed and every record is stored
    once with its metadata."""
    created = httpx.post(f"{urls[0]}{DATABASE}/collections", json={"name": name})
    path = f"{DATABASE}/collections/{created.json()['id']}"
    start = threading.Barrier(WRITERS_OF_KEYS)
    answers: list[tuple[int, str]] = []

    def write(writer: int) -> None:
        with httpx.Client(base_url=urls[writer % len(urls)], timeout=60) as http:
            for round_ in range(KEY_ROUNDS):
                body = {
                    "ids": [f"w{writer}-r{round_}-{i}" for i in range(KEY_ROWS)],
                    "embeddings": vectors(KEY_ROWS, dimension=4, seed=writer).tolist(),
                    "metadatas": [{f"k{round_}": i, f"s{round_}": "x"} for i in range(KEY_ROWS)],
                }
                start.wait()  # every writer sends the round's new keys at the same moment
                response = http.post(f"{path}/{('add', 'upsert')[writer % 2]}", json=body)
                answers.append((response.status_code, response.text))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS_OF_KEYS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a for a in answers if a[0] >= 300] == []
    stored = httpx.post(f"{urls[-1]}{path}/get", json={"include": ["metadatas"]}, timeout=60).json()
    assert sorted(stored["ids"]) == sorted(
        f"w{w}-r{r}-{i}"
        for w in range(WRITERS_OF_KEYS)
        for r in range(KEY_ROUNDS)
        for i in range(KEY_ROWS)
    )
    for record_id, metadata in zip(stored["ids"], stored["metadatas"], strict=True):
        round_, i = record_id.split("-")[1][1:], int(record_id.split("-")[2])
        assert metadata == {f"k{round_}": i, f"s{round_}": "x"}


@pytest.mark.e2e
def test_writers_adding_the_same_new_metadata_keys_fail_no_write(server: Server) -> None:
    """One server (embedded, and AWS storage on moto): its threads share one table handle."""
    write_new_keys_at_once([server.url], f"keys-{uuid.uuid4().hex[:8]}")


def test_servers_adding_the_same_new_metadata_keys_fail_no_write(
    moto: Moto, bucket: str, tmp_path: Path
) -> None:
    """Three server processes in AWS mode on one DynamoDB table and one bucket (as Lambda
    instances are): whichever process adds a column or creates the table, the others' writes
    re-read the schema instead of failing, and nothing written is lost."""
    env = {
        "CHROMA_SERVERLESS_MODE": "aws",
        "CHROMA_SERVERLESS_CATALOG_TABLE": new_catalog_table(moto),
        "CHROMA_SERVERLESS_RECORDS_URI": f"s3://{bucket}/{uuid.uuid4().hex}",
        "CHROMA_SERVERLESS_AWS_ENDPOINT": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    servers = []
    try:
        for i in range(3):
            (tmp_path / f"server{i}").mkdir()
            servers.append(Server(tmp_path / f"server{i}", env=env))
        write_new_keys_at_once([s.url for s in servers], "keys")
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        assert server.errors_logged() == []
