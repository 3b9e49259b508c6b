"""Forks through the official client (sync and async) against both modes: a fork has its
source's records at fork time without copying them, writes stay on their side, both survive the
source's compaction and version cleanup and deletion in either order, and ``fork_count`` counts
the whole lineage as Chroma does."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from chromadb.errors import ChromaError, InvalidArgumentError, NotFoundError

from chroma_serverless.cli import AWS_LOCAL_BUCKET
from chroma_serverless.service.maintenance import maintain, maintain_all
from chroma_serverless.types import IndexPolicy
from tests.factories import vectors
from tests.support.maintenance import EAGER, maintenance_beside
from tests.support.server import chroma_client, run_async

if TYPE_CHECKING:
    from chromadb.api import AsyncClientAPI, ClientAPI
    from chromadb.api.models.Collection import Collection

    from chroma_serverless.service.service import Service
    from tests.support.server import Server

pytestmark = [
    pytest.mark.e2e,
    # Cleanup with zero retention is the point here; LanceDB warns about concurrent readers.
    pytest.mark.filterwarnings(r"ignore:optimize\(cleanup_older_than=0\):UserWarning"),
]

# Maintenance at its most destructive: every step on a small collection (IVF-PQ index, scalar
# indexes, compaction), and every version but the latest removed.
ZERO_RETENTION = IndexPolicy(
    threshold=50, sub_vector_dims=4, rows_per_partition=32, fragment_target=1, retention_seconds=0
)
INCLUDE: Any = ["embeddings", "documents", "metadatas", "uris"]


def fill(collection: Collection, prefix: str, batches: int = 3, size: int = 30) -> None:
    """``batches`` adds (one fragment each, so maintenance has something to compact)."""
    for b in range(batches):
        ids = [f"{prefix}{b}-{i}" for i in range(size)]
        collection.add(
            ids=ids,
            embeddings=vectors(size, seed=b),
            documents=[f"document {i}" for i in ids],
            metadatas=[{"batch": b, "i": i} for i in range(size)],
            uris=[f"uri-{i}" for i in ids],
        )


def contents(collection: Collection) -> dict[str, Any]:
    """Everything a collection holds, by id."""
    got = collection.get(include=INCLUDE)
    return {
        record_id: (
            np.asarray(got["embeddings"][i]).tolist(),  # type: ignore[index]
            got["documents"][i],  # type: ignore[index]
            got["metadatas"][i],  # type: ignore[index]
            got["uris"][i],  # type: ignore[index]
        )
        for i, record_id in enumerate(got["ids"])
    }


def stored(server: Server, prefix: str) -> dict[str, int]:
    """The files under ``prefix`` of the server's storage (a directory or moto's S3) and their
    sizes in bytes."""
    if server.moto_endpoint is None:
        directory = server.data / prefix
        return {
            str(p.relative_to(directory)): p.stat().st_size
            for p in directory.rglob("*")
            if p.is_file()
        }
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=server.moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=AWS_LOCAL_BUCKET, Prefix=prefix)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def data_files(server: Server, collection_id: str) -> list[str]:
    """The data files stored under a collection's own table (its records written there)."""
    return sorted(stored(server, f"records/{collection_id}.lance/data/"))


def table_bytes(server: Server, collection_id: str) -> int:
    """Bytes stored under a collection's table (data, indexes, manifests, everything)."""
    return sum(stored(server, f"records/{collection_id}.lance/").values())


@pytest.fixture
def maintainer(server: Server, monkeypatch: pytest.MonkeyPatch) -> Service:
    return maintenance_beside(server, monkeypatch, ZERO_RETENTION)


def stored_tables(maintainer: Service) -> set[str]:
    return set(maintainer.records.collection_ids())


# ------------------------------------------------------------------ what a fork holds


def test_a_fork_has_the_records_at_fork_time_and_copies_none(
    client: ClientAPI, server: Server
) -> None:
    source = client.create_collection(
        "source", metadata={"team": "search"}, configuration={"hnsw": {"space": "cosine"}}
    )
    fill(source, "s")
    before = contents(source)

    fork = source.fork("experiment")

    assert fork.name == "experiment"
    assert fork.id != source.id
    assert client.get_collection("experiment").id == fork.id
    assert fork.metadata == {"team": "search"}
    assert fork.configuration_json == source.configuration_json
    assert fork.count() == 90
    assert contents(fork) == before
    assert data_files(server, str(fork.id)) == []  # its records are the source's files
    query = vectors(1, seed=7)
    assert fork.query(query_embeddings=query, n_results=5) == source.query(
        query_embeddings=query, n_results=5
    )


def test_writes_after_a_fork_stay_on_their_side(client: ClientAPI) -> None:
    source = client.create_collection("source")
    fill(source, "s", batches=1)
    fork = source.fork("fork")

    source.add(ids=["only-in-source"], embeddings=vectors(1, seed=1))
    source.update(ids=["s0-0"], metadatas=[{"edited": "source"}])
    fork.add(ids=["only-in-fork"], embeddings=vectors(1, seed=2))
    fork.upsert(ids=["s0-1"], embeddings=vectors(1, seed=3), metadatas=[{"edited": "fork"}])
    fork.delete(ids=["s0-2"])

    assert source.get(ids=["only-in-fork"])["ids"] == []
    assert fork.get(ids=["only-in-source"])["ids"] == []
    assert source.get(ids=["s0-0"])["metadatas"] == [{"batch": 0, "i": 0, "edited": "source"}]
    assert fork.get(ids=["s0-0"])["metadatas"] == [{"batch": 0, "i": 0}]
    assert source.get(ids=["s0-1"])["metadatas"] == [{"batch": 0, "i": 1}]
    assert fork.get(ids=["s0-1"])["metadatas"] == [{"batch": 0, "i": 1, "edited": "fork"}]
    assert source.get(ids=["s0-2"])["ids"] == ["s0-2"]
    assert (source.count(), fork.count()) == (31, 30)


def test_a_fork_of_an_empty_collection_starts_empty_and_apart(client: ClientAPI) -> None:
    source = client.create_collection("empty")
    fork = source.fork("empty-fork")
    assert fork.count() == 0
    fork.add(ids=["f"], embeddings=np.ones((1, 2), np.float32))
    source.add(ids=["s"], embeddings=np.ones((1, 3), np.float32))  # each fixes its dimension
    assert fork.get()["ids"] == ["f"]
    assert source.get()["ids"] == ["s"]


def test_a_fork_taken_while_the_source_is_written_is_a_consistent_snapshot(
    client: ClientAPI, server: Server
) -> None:
    source = client.create_collection("busy")
    writer = chroma_client(server).get_collection("busy")  # its own HTTP session
    written: list[int] = []
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            batch = len(written)
            ids = [f"b{batch}-{i}" for i in range(10)]
            writer.add(ids=ids, embeddings=vectors(10, seed=batch))
            written.append(batch)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while len(written) < 3:
            time.sleep(0.01)
        fork = source.fork("snapshot")
        during = len(written)
        while len(written) < during + 3:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()

    ids = fork.get()["ids"]
    batches = sorted({int(i.split("-")[0][1:]) for i in ids})
    assert batches == list(range(len(batches)))  # the writes up to some point, in order
    assert len(ids) == 10 * len(batches)  # each add all or nothing
    assert len(batches) < len(written)  # later writes stayed on the source
    assert source.count() == 10 * len(written)


def test_fork_with_the_async_client(client: ClientAPI, server: Server) -> None:
    async def workflow(aclient: AsyncClientAPI) -> None:
        source = await aclient.create_collection("source", metadata={"k": 1})
        await source.add(
            ids=["a", "b"], embeddings=np.eye(2, dtype=np.float32), documents=["x", "y"]
        )
        fork = await source.fork("fork")
        assert fork.metadata == {"k": 1}
        await fork.add(ids=["c"], embeddings=np.ones((1, 2), np.float32))
        await source.delete(ids=["a"])
        assert (await fork.get())["ids"] == ["a", "b", "c"]
        assert (await source.get())["ids"] == ["b"]
        assert await source.fork_count() == await fork.fork_count() == 1
        with pytest.raises(ChromaError, match="already exists"):
            await source.fork("fork")
        await aclient.delete_collection("source")
        with pytest.raises(NotFoundError):
            await source.fork("orphan")
        assert (await fork.get(include=["documents"]))["documents"] == ["x", "y", None]

    run_async(server, workflow)


# ------------------------------------------------------------------ fork_count


def test_fork_count_counts_every_fork_of_the_lineage(client: ClientAPI) -> None:
    root = client.create_collection("root")
    assert root.fork_count() == 0
    first = root.fork("first")
    second = root.fork("second")
    grandchild = first.fork("grandchild")

    for member in (root, first, second, grandchild):
        assert member.fork_count() == 3
    client.delete_collection("second")  # deleted forks still count
    for member in (root, first, grandchild):
        assert member.fork_count() == 3
    assert client.create_collection("unrelated").fork_count() == 0


# ------------------------------------------------------------------ errors


def test_fork_errors_are_chroma_errors(client: ClientAPI) -> None:
    source = client.create_collection("source")
    client.create_collection("taken")
    with pytest.raises(ChromaError, match=r"Collection \[taken\] already exists") as raised:
        source.fork("taken")
    assert not isinstance(raised.value, InvalidArgumentError)
    with pytest.raises(InvalidArgumentError):
        source.fork("x")  # too short a name
    client.delete_collection("source")
    with pytest.raises(NotFoundError):
        source.fork("after-delete")
    with pytest.raises(NotFoundError):
        source.fork_count()
    assert sorted(c.name for c in client.list_collections()) == ["taken"]


# ------------------------------------------------------------------ upkeep and deletion


def test_a_fork_survives_the_source_compaction_cleanup_and_deletion(
    client: ClientAPI, maintainer: Service
) -> None:
    source = client.create_collection("source")
    fill(source, "s")
    fork = source.fork("fork")
    at_fork = contents(fork)
    fill(source, "later")  # more fragments and versions on the source only
    source.delete(ids=["s0-0"])

    # WHEN the source is indexed, compacted and every old version removed
    report = maintain(maintainer, str(source.id))
    assert report["optimized"]
    assert contents(fork) == at_fork
    assert source.count() == 179

    # ... and deleted: its files stay for the fork
    client.delete_collection("source")
    maintain_all(maintainer)
    assert str(source.id) in stored_tables(maintainer)
    assert contents(fork) == at_fork
    fork.add(ids=["new"], embeddings=vectors(1, seed=9))
    maintain(maintainer, str(fork.id))  # the fork's own compaction and cleanup
    assert fork.count() == 91
    assert fork.get(ids=["s0-0", "new"])["ids"] == ["s0-0", "new"]

    # THEN deleting the fork releases both
    client.delete_collection("fork")
    assert stored_tables(maintainer).isdisjoint({str(source.id), str(fork.id)})
    assert maintain_all(maintainer) == []


def test_a_source_outlives_a_deleted_fork_and_cleans_up_again(
    client: ClientAPI, maintainer: Service
) -> None:
    source = client.create_collection("source")
    fill(source, "s")
    fork = source.fork("fork")
    forked = versions(maintainer, source)[-1]
    fork.add(ids=["f"], embeddings=vectors(1))
    client.delete_collection("fork")
    assert str(fork.id) not in stored_tables(maintainer)

    fill(source, "later")
    report = maintain(maintainer, str(source.id))
    assert report["optimized"]
    assert forked not in versions(maintainer, source)  # nothing pins it any more
    assert source.count() == 180
    assert source.get(ids=["s0-0", "later2-29"])["ids"] == ["s0-0", "later2-29"]


def test_old_versions_of_a_forked_source_are_cleaned_up_but_the_forks_own(
    client: ClientAPI, server: Server, maintainer: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live fork keeps exactly the version it was made from: the source's other old versions
    go with its cleanup, so rewriting a forked collection does not grow its storage forever."""
    keeping = maintenance_beside(server, monkeypatch, EAGER)  # keeps versions for a minute
    rows, dimension = 400, 64
    source = client.create_collection("source")
    ids = [f"r{i}" for i in range(rows)]
    source.add(ids=ids, embeddings=vectors(rows, dimension=dimension), documents=ids)
    fork = source.fork("fork")
    at_fork = contents(fork)
    forked = versions(maintainer, source)[-1]
    for rewrite in range(1, 4):  # every row rewritten, three times
        source.upsert(ids=ids, embeddings=vectors(rows, dimension=dimension, seed=rewrite))
        maintain(keeping, str(source.id))  # folded, indexed, compacted: every row once more
    before = table_bytes(server, str(source.id))

    # WHEN the source is maintained with zero retention while its fork lives
    maintain(maintainer, str(source.id))

    # THEN its storage shrinks to the fork's version and the latest (plus indexes), ...
    after = table_bytes(server, str(source.id))
    assert after < 0.75 * before, (before, after)
    assert versions(maintainer, source)[0] == forked  # kept for the fork, the only old one
    assert len(versions(maintainer, source)) <= 3  # with the latest, and the one before it
    # ... the fork still reads every record as it was, bit for bit, and both still search
    assert contents(fork) == at_fork
    first, latest = (vectors(rows, dimension=dimension, seed=seed) for seed in (0, 3))
    assert source.query(query_embeddings=latest[7:8], n_results=1)["ids"] == [["r7"]]
    assert fork.query(query_embeddings=first[7:8], n_results=1)["ids"] == [["r7"]]

    # WHEN the fork is deleted, the version it was made from goes with the next maintenance,
    # though nothing was written since
    client.delete_collection("fork")
    maintain(maintainer, str(source.id))
    assert forked not in versions(maintainer, source)
    assert table_bytes(server, str(source.id)) < after


def versions(maintainer: Service, collection: Collection) -> list[int]:
    """The versions of the collection's table still stored, oldest first."""
    stored = maintainer.catalog.get_collection_by_id(str(collection.id))
    return [point.version for point in maintainer.records.restore_points(stored)]


def test_a_fork_of_a_fork_outlives_the_collections_above_it(
    client: ClientAPI, maintainer: Service
) -> None:
    root = client.create_collection("root")
    fill(root, "r", batches=2)
    middle = root.fork("middle")
    middle.add(ids=["m"], embeddings=vectors(1, seed=5))
    middle.delete(ids=["r0-0"])
    leaf = middle.fork("leaf")
    at_fork = contents(leaf)

    client.delete_collection("middle")
    client.delete_collection("root")
    for collection_id in (root.id, middle.id, leaf.id):
        maintain(maintainer, str(collection_id))
    maintain_all(maintainer)

    assert contents(leaf) == at_fork
    assert leaf.count() == 60
    assert leaf.fork_count() == 2
    client.delete_collection("leaf")
    assert stored_tables(maintainer).isdisjoint({str(root.id), str(middle.id), str(leaf.id)})
