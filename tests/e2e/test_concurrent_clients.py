"""Many clients at once on one server, in both modes (``--aws-local`` runs moto in the server's
process, whose DynamoDB and S3 must then answer concurrent requests as AWS does): Chroma's
``test_multithreaded_get_or_create`` (sync and async), and threads creating, writing, reading
and deleting collections side by side. No request fails with a 5xx and the end state is exactly
what the requests acknowledged."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pytest

from tests.factories import vectors
from tests.support.server import chroma_client, run_async

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chromadb.api import AsyncClientAPI, ClientAPI

    from tests.support.server import Server

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("quiet")]

THREADS = 32


@pytest.fixture
def quiet(server: Server) -> Iterator[None]:
    """The server logs no error and no traceback meanwhile: moto answers a request it fails
    with a 500 that boto3 retries, so only its log shows it."""
    start = server.log.stat().st_size
    yield
    with server.log.open() as log:
        log.seek(start)
        logged = log.read()
    assert "Traceback" not in logged and "internal error" not in logged, logged[-3000:]


def test_multithreaded_get_or_create(client: ClientAPI, server: Server) -> None:
    def get_or_create(_: int) -> str:
        return str(client.get_or_create_collection("shared", metadata={"k": 1}).id)

    with ThreadPoolExecutor(THREADS) as pool:
        ids = list(pool.map(get_or_create, range(4 * THREADS)))

    assert len(set(ids)) == 1
    assert [c.name for c in client.list_collections()] == ["shared"]


def test_multithreaded_get_or_create_with_the_async_client(
    client: ClientAPI, server: Server
) -> None:
    async def workflow(aclient: AsyncClientAPI) -> set[str]:
        made = await asyncio.gather(
            *(aclient.get_or_create_collection("shared-async") for _ in range(4 * THREADS))
        )
        return {str(c.id) for c in made}

    assert len(run_async(server, workflow)) == 1
    assert [c.name for c in client.list_collections()] == ["shared-async"]


def test_threads_creating_writing_and_deleting_collections(
    client: ClientAPI, server: Server
) -> None:
    """Each thread (a client of its own) creates a collection, writes and reads it, adds its
    share to one collection they all get-or-create, and deletes its own collection if odd."""
    size = 20

    def work(n: int) -> None:
        own = chroma_client(server)
        mine = own.create_collection(f"own{n}", metadata={"n": n})
        ids = [f"{n}-{i}" for i in range(size)]
        mine.add(ids=ids, embeddings=vectors(size, seed=n), documents=ids)
        assert mine.count() == size
        shared = own.get_or_create_collection("shared")
        shared.add(ids=ids, embeddings=vectors(size, seed=n))
        assert mine.get(ids=ids[:3])["ids"] == ids[:3]
        if n % 2:
            own.delete_collection(f"own{n}")

    with ThreadPoolExecutor(THREADS // 2) as pool:
        list(pool.map(work, range(THREADS)))  # re-raises any thread's failure

    names = sorted(c.name for c in client.list_collections())
    assert names == sorted(["shared", *(f"own{n}" for n in range(0, THREADS, 2))])
    shared = client.get_collection("shared")
    assert shared.count() == THREADS * size
    for n in range(0, THREADS, 2):
        kept = client.get_collection(f"own{n}")
        assert kept.metadata == {"n": n} and kept.count() == size
        got = kept.get(ids=[f"{n}-0"], include=["embeddings"])
        assert np.allclose(got["embeddings"][0], vectors(size, seed=n)[0])  # type: ignore[index]
