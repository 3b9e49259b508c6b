"""``chroma-serverless import`` and ``export`` as a user runs them (real subprocesses) against a
running server's storage (embedded default and ``--aws-local``) and through its HTTP API, read
back with the official client: a 100k-row Parquet import killed half-way and resumed ends with
exactly the file's rows; export then import round-trips every record exactly; CSV and JSONL
columns map onto records; documents without vectors are embedded with the collection's function;
sources on S3; a token for a server with auth."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import signal
import subprocess
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

import boto3
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chromadb.base_types import SparseVector

from tests.factories import vectors
from tests.support.commands import VIAS, all_records, cli, cli_env, command, failing, target
from tests.support.server import Server, admin_client, close_chroma_clients, run_async

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from chromadb.api import AsyncClientAPI, ClientAPI

pytestmark = pytest.mark.e2e

DB = "/api/v2/tenants/default_tenant/databases/default_database"
ROWS = 100_000
DIM = 8


def reports(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100k records in Parquet: id, 8-d embedding, document, and int and string metadata."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.parquet"
    ids = np.arange(ROWS)
    table = pa.table(
        {
            "id": [f"r{i}" for i in ids],
            "embedding": pa.FixedSizeListArray.from_arrays(vectors(ROWS).reshape(-1), DIM),
            "document": [f"document {i}" for i in ids],
            "n": ids,
            "tag": np.array(["red", "green", "blue"])[ids % 3],
        }
    )
    pq.write_table(table, path, row_group_size=10_000)
    return path


def types_of(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        key: [type(v) for v in value] if isinstance(value, list) else type(value)
        for key, value in (metadata or {}).items()
    }


# ------------------------------------------------------------------ crash and resume


@pytest.mark.parametrize("via", VIAS)
def test_import_killed_half_way_resumes_to_exactly_the_files_rows(
    client: ClientAPI, server: Server, corpus: Path, tmp_path: Path, via: str
) -> None:
    # GIVEN an import of 100k rows in chunks, killed (SIGKILL) once half of them are recorded
    state = tmp_path / "state"
    args = ["import", str(corpus), "--collection", "big", "--state-dir", str(state)]
    args += ["--batch-size", "2000", "--no-maintain", *target(server, via)]
    first = subprocess.Popen(
        command(*args), env=cli_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    saved: dict[str, Any] = {}
    while first.poll() is None and saved.get("records", 0) < ROWS // 2:
        found = list(state.glob("import-*.json"))
        saved = json.loads(found[0].read_text()) if found else {}
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    _, errors = first.communicate()
    assert first.returncode == -signal.SIGKILL, errors.decode()
    saved = json.loads(next(state.glob("import-*.json")).read_text())
    assert ROWS // 2 <= saved["records"] < ROWS and not saved["done"]

    # WHEN the same command runs again
    (report,) = reports(cli(server, *args))

    # THEN it continues from the checkpoint, and the collection holds exactly the file's rows
    assert report["resumed_at"] == saved["records"]
    assert report["imported"] == ROWS - saved["records"]
    assert report["records"] == ROWS
    collection = client.get_collection("big")
    assert collection.count() == ROWS
    assert sorted(collection.get(include=[])["ids"]) == sorted(f"r{i}" for i in range(ROWS))
    sample = collection.get(ids=["r0", "r49999", "r99999"], include=["embeddings", "metadatas"])
    expected = vectors(ROWS)[[0, 49_999, 99_999]]
    assert np.asarray(sample["embeddings"], dtype=np.float32).tobytes() == expected.tobytes()
    assert sample["metadatas"] == [
        {"n": 0, "tag": "red"},
        {"n": 49_999, "tag": "green"},
        {"n": 99_999, "tag": "red"},
    ]

    # AND running it once more does nothing: the import is recorded as done
    (again,) = reports(cli(server, *args))
    assert again["already_done"] and again["imported"] == 0
    assert collection.count() == ROWS


def test_a_changed_file_is_not_resumed_over(
    client: ClientAPI, server: Server, tmp_path: Path
) -> None:
    source = tmp_path / "part.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"a{i}", "embedding": [i, 1.0]}) + "\n" for i in range(10))
    )
    state = tmp_path / "state"
    args = ["import", str(source), "--collection", "part", "--state-dir", str(state)]
    args += ["--no-maintain", "--path", str(server.data)]
    cli(server, *args)
    checkpoint = next(state.glob("import-*.json"))
    saved = json.loads(checkpoint.read_text())
    checkpoint.write_text(json.dumps({**saved, "done": False, "file": 0, "row": 5}))
    with source.open("a") as more:
        more.write(json.dumps({"id": "a10", "embedding": [10, 1.0]}) + "\n")

    assert "--restart" in failing(server, *args)
    cli(server, *args, "--restart")
    assert client.get_collection("part").count() == 11

    # A finished import into a collection deleted since starts over in the new one.
    client.delete_collection("part")
    (report,) = reports(cli(server, *args))
    assert (report["resumed_at"], report["imported"]) == (0, 11)
    assert client.get_collection("part").count() == 11


# ------------------------------------------------------------------ export -> import


def source_collection(client: ClientAPI) -> Any:
    """Every kind of value a record can hold, in a collection with its own configuration."""
    collection = client.create_collection(
        "source",
        metadata={"team": "search", "since": 2024},
        configuration={"hnsw": {"space": "cosine", "ef_search": 150}},
    )
    n = 300
    metadatas: list[Any] = []
    for i in range(n):
        metadata = {
            "i": i,
            "f": i / 3,
            "whole": float(i),  # a float with an integral value stays a float
            "b": i % 2 == 0,
            "s": f"v{i}",
            "ints": [i, i + 1],
            "floats": [0.5, float(i)],
            "bools": [True, False],
            "strs": ["a", f"b{i}"],
            "mixed": i if i % 2 else f"s{i}",  # one key, values of two types
            "ünï côdé.key": "x",
            "sparse": SparseVector([i, i + 7], [0.25, i / 7], ["a", "b"] if i % 3 else None),
            # ... and one whose values are a sparse vector or a number
            "either": SparseVector([1], [0.5]) if i % 5 == 0 else 2.5,
        }
        metadatas.append(None if i % 50 == 7 else metadata)
    collection.add(
        ids=[f"id-{i}" for i in range(n)],
        embeddings=vectors(n, dimension=1536, seed=3),  # over HTTP, an export of several pages
        metadatas=metadatas,
        documents=cast("Any", [None if i % 10 == 3 else f"text {i} ✓" for i in range(n)]),
        uris=cast("Any", [f"s3://bucket/{i}" if i % 4 == 0 else None for i in range(n)]),
    )
    return collection


def collection_json(server: Server, database: str, name: str) -> dict[str, Any]:
    path = f"/api/v2/tenants/default_tenant/databases/{database}/collections/{name}"
    found: dict[str, Any] = httpx.get(server.url + path).json()
    return {k: found[k] for k in ("name", "metadata", "configuration_json", "schema", "dimension")}


@pytest.mark.parametrize("format", ["parquet", "jsonl"])
@pytest.mark.parametrize("via", VIAS)
def test_export_then_import_round_trips_every_record_exactly(
    client: ClientAPI, server: Server, tmp_path: Path, via: str, format: str
) -> None:
    source = source_collection(client)
    admin_client(server).create_database("copy")

    exported = reports(
        cli(server, "export", str(tmp_path / "out"), "--format", format, *target(server, via))
    )
    assert exported == [{"collection": "source", "file": f"source.{format}", "records": 300}]
    load = ["import", str(tmp_path / "out"), "--database", "copy"]
    (report,) = reports(
        cli(server, *load, "--state-dir", str(tmp_path / "s"), *target(server, via))
    )
    assert report["records"] == 300

    client.set_database("copy")
    copy = client.get_collection("source")
    before, after = all_records(source), all_records(copy)
    assert after == before
    assert {k: types_of(v[3]) for k, v in after.items()} == {
        k: types_of(v[3]) for k, v in before.items()
    }
    assert collection_json(server, "copy", "source") == collection_json(
        server, "default_database", "source"
    )


def test_export_of_a_whole_database_and_at_an_earlier_version(
    client: ClientAPI, server: Server, tmp_path: Path
) -> None:
    first = client.create_collection("first")
    first.add(ids=["a", "b"], embeddings=vectors(2))
    second = client.create_collection("second")
    second.add(ids=["x"], embeddings=vectors(1), metadatas=[{"k": 1}])
    versions = [
        json.loads(v)
        for v in cli(server, "restore", "first", "--list", "--path", str(server.data)).splitlines()
    ]
    first.delete(ids=["a"])

    exported = reports(cli(server, "export", str(tmp_path / "now"), "--path", str(server.data)))
    assert {(e["collection"], e["records"]) for e in exported} == {("first", 1), ("second", 1)}
    manifest = json.loads((tmp_path / "now" / "manifest.json").read_text())
    assert [c["name"] for c in manifest["collections"]] == ["first", "second"]

    then = ["export", str(tmp_path / "then"), "--collection", "first"]
    then += ["--as-of", str(versions[-1]["version"]), "--path", str(server.data)]
    assert reports(cli(server, *then)) == [
        {"collection": "first", "file": "first.parquet", "records": 2}
    ]
    assert pq.read_table(tmp_path / "then" / "first.parquet").column("id").to_pylist() == ["a", "b"]

    # One collection of an export, into another database
    admin_client(server).create_database("copy")
    load = ["import", str(tmp_path / "now"), "--collection", "second", "--database", "copy"]
    cli(server, *load, "--state-dir", str(tmp_path / "state"), "--path", str(server.data))
    client.set_database("copy")
    assert [c.name for c in client.list_collections()] == ["second"]
    assert client.get_collection("second").get(include=["metadatas"])["metadatas"] == [{"k": 1}]


# ------------------------------------------------------------------ columns and formats


@pytest.mark.parametrize("via", VIAS)
def test_csv_jsonl_and_parquet_columns_map_onto_records(
    client: ClientAPI, server: Server, tmp_path: Path, via: str
) -> None:
    # CSV: renamed columns, every other column a metadata key, JSON arrays as embeddings
    csv = tmp_path / "products.csv"
    csv.write_text(
        "sku,vector,title,price,stock,onsale,notes\n"
        '1,"[1, 0]",Red shoe,19.5,3,true,\n'
        '2,"[0, 1]",Blue hat,,0,false,fragile\n'
    )
    # JSONL (gzip): a metadata object, or else a record's other fields; blank lines skipped
    lines = [
        {"id": "e1", "embedding": [1, 2], "metadata": {"n": 1, "x": 1.0, "l": [1]}},
        {"id": "e2", "embedding": [3, 4], "kind": "click", "at": 7, "tags": []},
    ]
    jsonl = tmp_path / "events.jsonl.gz"
    jsonl.write_bytes(gzip.compress(b"\n\n".join(json.dumps(line).encode() for line in lines)))
    # A directory of Parquet files: metadata as a map, as JSON text, as plain columns
    parts = tmp_path / "parts"
    parts.mkdir()
    pairs = pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float64()))
    maps = pa.array([[("n", 1)], None], pa.map_(pa.string(), pa.int64()))
    pq.write_table(
        pa.table({"id": ["m1", "m2"], "embedding": pairs, "metadata": maps}), parts / "a.parquet"
    )
    texts = ['{"s": "x", "f": 2.0}', None]
    pq.write_table(
        pa.table({"id": ["j1", "j2"], "embedding": pairs, "metadata": texts}), parts / "b.parquet"
    )
    plain = {"id": ["p1", "p2"], "embedding": pairs, "score": [float("nan"), 0.5]}
    plain["tags"] = pa.array([[], ["x"]], pa.list_(pa.string()))
    pq.write_table(pa.table(plain), parts / "c.parquet")

    state = ["--state-dir", str(tmp_path / "state"), *target(server, via)]
    renamed = ["--id", "sku", "--embedding", "vector", "--document", "title"]
    cli(server, "import", str(csv), "--collection", "products", *renamed, *state)
    cli(server, "import", str(jsonl), "--collection", "events", *state)
    cli(server, "import", str(parts), "--collection", "parts", *state)

    products = client.get_collection("products").get(
        ids=["1", "2"], include=["embeddings", "documents", "metadatas"]
    )
    assert products["documents"] == ["Red shoe", "Blue hat"]
    assert np.asarray(products["embeddings"]).tolist() == [[1, 0], [0, 1]]
    # Empty cells are missing values, not empty strings.
    assert products["metadatas"] == [
        {"price": 19.5, "stock": 3, "onsale": True},
        {"stock": 0, "onsale": False, "notes": "fragile"},
    ]
    events = client.get_collection("events").get(ids=["e1", "e2"], include=["metadatas"])
    assert events["metadatas"] == [{"n": 1, "x": 1.0, "l": [1]}, {"kind": "click", "at": 7}]
    assert types_of(events["metadatas"][0]) == {"n": int, "x": float, "l": [int]}
    found = client.get_collection("parts").get(include=["embeddings", "metadatas"])
    assert found["ids"] == ["m1", "m2", "j1", "j2", "p1", "p2"]  # files in name order
    assert np.asarray(found["embeddings"]).tolist() == [[1, 2], [3, 4]] * 3
    # A NaN float and an empty list are missing values too.
    assert found["metadatas"] == [
        {"n": 1},
        None,
        {"s": "x", "f": 2.0},
        None,
        None,
        {"score": 0.5, "tags": ["x"]},
    ]


@pytest.mark.usefixtures("built_model")
@pytest.mark.parametrize("via", VIAS)
def test_documents_without_vectors_are_embedded_with_the_collections_function(
    client: ClientAPI, server: Server, tmp_path: Path, via: str
) -> None:
    texts = {
        "cat": "The cat sat on the warm windowsill and purred.",
        "rocket": "The rocket launch was delayed by high winds over the pad.",
        "pasta": "Boil the pasta in salted water for nine minutes.",
    }
    source = tmp_path / "docs.jsonl"
    source.write_text(
        "".join(json.dumps({"id": k, "document": v}) + "\n" for k, v in texts.items())
    )
    state = ["--state-dir", str(tmp_path / "state"), *target(server, via)]
    cli(server, "import", str(source), "--collection", "docs", *state)

    collection = client.get_collection("docs")
    assert collection.count() == 3
    # The server embeds query texts with the same function: each document finds itself.
    path = f"{DB}/collections/{collection.id}/query"
    body = {"query_texts": ["a kitten purring", "space launch"], "n_results": 1}
    assert httpx.post(server.url + path, json=body).json()["ids"] == [["cat"], ["rocket"]]


def test_bad_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    storage = ["--path", str(tmp_path / "data"), "--state-dir", str(tmp_path / "state")]
    duplicated = tmp_path / "dup.jsonl"
    duplicated.write_text('{"id": "a", "embedding": [1]}\n{"id": "a", "embedding": [2]}\n')
    assert "duplicates of: a" in failing(
        None, "import", str(duplicated), "--collection", "bad", *storage
    )
    lacking = tmp_path / "lacking.jsonl"
    lacking.write_text('{"id": "a", "metadata": {"k": 1}}\n')
    assert "documents for every record" in failing(
        None, "import", str(lacking), "--collection", "bad", *storage
    )
    table = tmp_path / "table.csv"
    table.write_text("id,vector\na,1\n")
    assert "No column 'vec'" in failing(
        None, "import", str(table), "--collection", "bad", "--embedding", "vec", *storage
    )
    assert "No such file" in failing(
        None, "import", str(tmp_path / "nope.parquet"), "--collection", "bad", *storage
    )


# ------------------------------------------------------------------ sources on S3, auth


def test_import_from_and_export_to_s3(
    client: ClientAPI, server: Server, corpus: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The files live on the moto of the --aws-local server, or on the session's for the embedded
    # one (CHROMA_SERVERLESS_AWS_ENDPOINT names the S3 endpoint in either mode).
    endpoint = server.moto_endpoint or request.getfixturevalue("moto").endpoint
    env = {**cli_env(server), "CHROMA_SERVERLESS_AWS_ENDPOINT": endpoint}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = f"corpora-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    part = pq.read_table(corpus).slice(0, 5_000)
    for half in range(2):
        local = tmp_path / f"part-{half}.parquet"
        pq.write_table(part.slice(half * 2_500, 2_500), local)
        s3.upload_file(str(local), bucket, f"set/part-{half}.parquet")
    storage = ["--state-dir", str(tmp_path / "s"), *target(server, "storage")]
    cli(server, "import", f"s3://{bucket}/set/", "--collection", "from-s3", *storage, env=env)
    assert client.get_collection("from-s3").count() == 5_000

    # ... and an export there, imported back as it was
    backup = f"s3://{bucket}/backup"
    cli(server, "export", backup, "--collection", "from-s3", *target(server, "storage"), env=env)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key="backup/manifest.json")["Body"].read())
    assert [(c["name"], c["records"]) for c in manifest["collections"]] == [("from-s3", 5_000)]
    client.delete_collection("from-s3")
    cli(server, "import", backup, *storage, env=env)
    assert client.get_collection("from-s3").count() == 5_000


def test_import_through_an_endpoint_with_a_token(tmp_path: Path, corpus: Path) -> None:
    token = "csk-" + secrets.token_urlsafe(32)
    server = Server(
        tmp_path,
        "--auth",
        env={
            "CHROMA_SERVERLESS_ADMIN_TOKEN": token,
            "CHROMA_SERVERLESS_MAX_BATCH_SIZE": "700",
            # Under 700 of these records: the import halves a batch the server refuses (413).
            "CHROMA_SERVERLESS_MAX_BODY_BYTES": "40000",
        },
    )
    try:
        small = tmp_path / "small.parquet"
        pq.write_table(pq.read_table(corpus).slice(0, 3_000), small)
        args = ["import", str(small), "--collection", "secured", "--url", server.url]
        args += ["--state-dir", str(tmp_path / "state")]
        assert "Unauthorized" in failing(server, *args)
        env = {**os.environ, "CHROMA_SERVERLESS_TOKEN": token}
        (report,) = reports(cli(server, *args, env=env))
        assert report["records"] == 3_000

        async def count(client: AsyncClientAPI) -> int:
            return await (await client.get_collection("secured")).count()

        headers = {"Authorization": f"Bearer {token}"}
        assert run_async(server, count, headers=headers) == 3_000
    finally:
        close_chroma_clients()
        server.stop()
    assert server.errors_logged() == []
