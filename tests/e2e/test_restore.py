"""Point-in-time restore as a user runs it, against a running server (embedded default and
``--aws-local``): ``chroma-serverless restore`` on storage and through the admin-only HTTP route,
read back with the official client (sync and async) from the server process, which must see the
restored records on its next read."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from chroma_serverless.settings import Settings
from tests.factories import vectors
from tests.support.commands import VIAS, all_records, cli, cli_env, failing, target
from tests.support.server import run_async

if TYPE_CHECKING:
    from pathlib import Path

    from chromadb.api import AsyncClientAPI, ClientAPI

    from tests.support.server import Server

pytestmark = pytest.mark.e2e

DB = "/api/v2/tenants/default_tenant/databases/default_database"
WEEK = 7 * 24 * 3600


def restore(server: Server, via: str, *args: str) -> list[dict[str, Any]]:
    output = cli(server, "restore", *args, *target(server, via))
    return [json.loads(line) for line in output.splitlines()]


def filled(client: ClientAPI, name: str = "docs", n: int = 300) -> Any:
    collection = client.create_collection(name)
    collection.add(
        ids=[f"r{i}" for i in range(n)],
        embeddings=vectors(n, dimension=4, seed=5),
        metadatas=[{"k": i % 10, "s": f"v{i}"} for i in range(n)],
        documents=[f"doc {i}" for i in range(n)],
    )
    return collection


@pytest.mark.parametrize("via", VIAS)
def test_restore_to_before_a_bad_delete_brings_the_records_back(
    client: ClientAPI, server: Server, via: str
) -> None:
    # GIVEN a collection, a moment, and then a delete that removes far too much
    collection = filled(client)
    good = all_records(collection)
    moment = datetime.now(UTC)
    collection.delete(where={"k": {"$lt": 7}})
    assert collection.count() == 90

    # WHEN it is restored to that moment
    (restored,) = restore(server, via, "docs", "--to", moment.isoformat())

    # THEN the server's very next reads see every record as it was, with the sync and the
    # async client alike
    assert restored["restored"]["records"] == 300
    assert collection.count() == 300
    assert all_records(collection) == good
    query = collection.query(query_embeddings=vectors(1, dimension=4, seed=5), n_results=1)
    assert query["ids"] == [["r0"]]

    async def count(aclient: AsyncClientAPI) -> int:
        return await (await aclient.get_collection("docs")).count()

    assert run_async(server, count) == 300

    # AND the restore is itself a version: restoring the one before it undoes it
    restore(server, via, "docs", "--to", str(restored["previous"]))
    assert collection.count() == 90
    restore(server, via, "docs", "--to", moment.isoformat())
    assert all_records(collection) == good


@pytest.mark.parametrize("via", VIAS)
def test_restore_as_a_new_collection_leaves_the_original_alone(
    client: ClientAPI, server: Server, via: str
) -> None:
    collection = filled(client)
    good = all_records(collection)
    before = restore(server, via, "docs", "--list")[-1]
    collection.update(ids=["r1"], metadatas=[{"k": 99}])
    collection.delete(ids=["r2", "r3"])

    (restored,) = restore(server, via, "docs", "--to", str(before["version"]), "--as", "docs-then")

    copy = client.get_collection("docs-then")
    assert restored["collection"] == "docs-then" and restored["id"] == str(copy.id)
    assert all_records(copy) == good
    assert copy.metadata == collection.metadata
    assert copy.configuration_json == collection.configuration_json
    assert collection.count() == 298
    copy.add(ids=["new"], embeddings=vectors(1, dimension=4))  # an ordinary collection from here on
    assert (copy.count(), collection.count()) == (301, 298)

    # It is a fork of that version: its records outlive the source's cleanup and deletion.
    env = {**cli_env(server), "CHROMA_SERVERLESS_INDEX_RETENTION_SECONDS": "0"}
    env["CHROMA_SERVERLESS_INDEX_FRAGMENT_TARGET"] = "0"
    cli(server, "maintain", "--path", str(server.data), env=env)
    client.delete_collection("docs")
    after = all_records(copy)
    del after["new"]
    assert after == good
    assert copy.fork_count() == 1


def test_versions_list_timestamps_and_record_counts(client: ClientAPI, server: Server) -> None:
    """A version per fold of the write log into the table (by maintenance here): the writes
    between two folds restore together."""

    def folded() -> None:
        cli(server, "maintain", "--path", str(server.data), env=cli_env(server))

    collection = filled(client, n=10)
    folded()
    collection.add(ids=["extra"], embeddings=vectors(1, dimension=4))
    folded()
    collection.delete(ids=["r0", "r1"])

    versions = restore(server, "storage", "docs", "--list")
    counts = [v["records"] for v in versions]
    # Maintenance (compaction) may add versions of the same records in between.
    assert [c for i, c in enumerate(counts) if i == 0 or c != counts[i - 1]] == [0, 10, 11, 9]
    numbers = [v["version"] for v in versions]
    times = [datetime.fromisoformat(v["timestamp"]) for v in versions]
    assert numbers == sorted(numbers) and times == sorted(times)
    assert all(t.tzinfo is not None for t in times)
    assert restore(server, "http", "docs", "--list")[: len(versions)] == versions


@pytest.mark.parametrize("via", VIAS)
def test_each_version_says_what_made_it(client: ClientAPI, server: Server, via: str) -> None:
    # GIVEN a collection's writes (each folded into the table by the read after it), a delete,
    # maintenance, and a restore
    collection = filled(client, n=10)
    assert collection.count() == 10
    collection.upsert(ids=["r1", "new"], embeddings=vectors(2, dimension=4))
    assert collection.count() == 11
    collection.delete(ids=["r0"])
    assert collection.count() == 10
    env = {**cli_env(server), "CHROMA_SERVERLESS_INDEX_FRAGMENT_TARGET": "0"}
    cli(server, "maintain", "--collection", "docs", "--path", str(server.data), env=env)
    listed = restore(server, via, "docs", "--list")
    first_delete = next(i for i, v in enumerate(listed) if v["made_by"] == "delete")
    before_delete = listed[first_delete - 1]["version"]
    restore(server, via, "docs", "--to", str(before_delete))

    # WHEN its versions are listed
    versions = restore(server, via, "docs", "--list")

    # THEN each says what made it, in plain words, in the order it happened
    made = [v["made_by"] for v in versions]
    assert made[0] == "create (or overwrite)", made
    assert None not in made, made
    writes = [i for i, m in enumerate(made) if m == "write (add, upsert or update)"]
    deletes = [i for i, m in enumerate(made) if m == "delete"]
    upkeep = [i for i, m in enumerate(made) if m in ("compaction", "index build")]
    assert writes[0] < deletes[0] < upkeep[0], made
    assert made[-1] == f"restore of version {before_delete}"


def test_maintenance_keeps_the_versions_of_the_retention_window(tmp_path: Path) -> None:
    # GIVEN a collection loaded in four writes, then compacted by maintenance
    source = tmp_path / "rows.jsonl"
    rows = [{"id": f"r{i}", "embedding": [i, 1.0]} for i in range(100)]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    storage = ["--path", str(tmp_path / "data")]
    load = ["import", str(source), "--collection", "docs", "--batch-size", "25", "--no-maintain"]
    cli(None, *load, "--state-dir", str(tmp_path / "state"), *storage)
    first = [v for v in listed(storage) if v["records"]][0]
    compact = {**os.environ, "CHROMA_SERVERLESS_INDEX_FRAGMENT_TARGET": "0"}
    cli(None, "maintain", *storage, env=compact)

    # THEN its first write is still restorable (the default window is a week)
    back = ["restore", "docs", "--to", str(first["version"]), *storage]
    (restored,) = restore_output(cli(None, *back))
    assert restored["restored"]["records"] == first["records"] == 25
    assert listed(storage)[-1]["records"] == 25

    # AND with a window of 0 s, the next maintenance removes every replaced version
    cli(
        None,
        "maintain",
        *storage,
        env={**compact, "CHROMA_SERVERLESS_INDEX_RETENTION_SECONDS": "0"},
    )
    assert [v["records"] for v in listed(storage)] == [25]
    assert "is not kept" in failing(None, *back)


def listed(storage: list[str]) -> list[dict[str, Any]]:
    return restore_output(cli(None, "restore", "docs", "--list", *storage))


def restore_output(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def test_restore_refuses_what_it_cannot_do(client: ClientAPI, server: Server) -> None:
    collection = filled(client, n=5)
    client.create_collection("empty")
    storage = ["--path", str(server.data)]
    assert "is not kept" in failing(server, "restore", "docs", "--to", "9999", *storage)
    taken = ["--to", "2100-01-01", "--as", "empty"]
    assert "already exists" in failing(server, "restore", "docs", *taken, *storage)

    def answer(name: str, body: dict[str, Any]) -> tuple[int, str, str]:
        found = client.get_collection(name)
        path = f"{server.url}{DB}/collections/{found.id}/restore"
        response = httpx.post(path, json=body)
        return response.status_code, response.json()["error"], response.json()["message"]

    assert answer("docs", {"to": 9999})[:2] == (404, "NotFoundError")
    assert answer("docs", {"to": "soon"})[:2] == (400, "InvalidArgumentError")
    early = answer("docs", {"to": "2001-01-01T00:00:00Z"})
    assert early[:2] == (404, "NotFoundError") and "no version kept from 2001" in early[2]
    empty = answer("empty", {"to": 1})
    assert empty[:2] == (404, "NotFoundError") and "no stored records" in empty[2]
    assert answer("docs", {"to": 1, "new_name": "empty"})[0] == 409
    assert answer("docs", {"new_name": "x"})[0] == 422
    assert collection.count() == 5
    assert [c.name for c in client.list_collections()] == ["docs", "empty"]


def test_the_retention_window_is_a_week_unless_configured() -> None:
    assert Settings.from_env({}).index.retention_seconds == WEEK
    configured = {"CHROMA_SERVERLESS_INDEX_RETENTION_SECONDS": "3600"}
    assert Settings.from_env(configured).index.retention_seconds == 3600
