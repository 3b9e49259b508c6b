"""What an operator reads from ``chroma-serverless run --log-format json``, driven by the
official client (sync and async, both storage modes): each request's JSON log line and EMF
document, the ``chroma-trace-id`` that leads from an error a client saw to its log line, and
never a credential, a document, a metadata value or an embedding in any of it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.support.observe import (
    DOCUMENT,
    EMBEDDING,
    METADATA_VALUE,
    QUERY_ROUTE,
    RECORD_ROUTE,
    TOKEN,
    Output,
    assert_no_secret,
    bearer,
    dimensions,
    request_dimensions,
)
from tests.support.server import Server, close_chroma_clients, run_async

if TYPE_CHECKING:
    from pathlib import Path

    from chromadb.api import AsyncClientAPI

pytestmark = pytest.mark.e2e


class JsonServer:
    """``chroma-serverless run --log-format json --auth``, its stdout read as it comes (JSON
    lines and EMF documents; a full pipe would stall the server)."""

    def __init__(self, path: Path, mode: str) -> None:
        extra = ("--aws-local",) if mode == "aws-local" else ()
        self.server = Server(
            path,
            "--log-format",
            "json",
            "--auth",
            *extra,
            env={"CHROMA_SERVERLESS_ADMIN_TOKEN": TOKEN},
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.server.process.stdout is not None
        self._lines.extend(self.server.process.stdout)

    def stop(self) -> Output:
        self.server.process.terminate()
        self.server.process.wait(timeout=30)
        self._reader.join(timeout=30)
        self.server.stop()
        return Output.parse("".join(self._lines), self.server.log.read_text())


@dataclass
class Served:
    out: Output
    collections: dict[str, str]  # client -> the id of the collection it wrote
    missing_trace_ids: dict[str, str]  # client -> the trace id of its NotFoundError


@pytest.fixture(scope="module", params=["embedded", "aws-local"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """The official client, sync and async, writing and querying a server that logs JSON."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from chromadb.errors import NotFoundError

    running = JsonServer(tmp_path_factory.mktemp("json-server"), request.param)
    collections, missing = {}, {}
    try:
        client = chromadb.HttpClient(
            host=running.server.host,
            port=running.server.port,
            settings=ChromaSettings(
                anonymized_telemetry=False,
                chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
                chroma_client_auth_credentials=TOKEN,
            ),
        )
        collection = client.create_collection("sync-client")
        collection.add(
            ids=["a", "b"],
            embeddings=[EMBEDDING, (0.5, 0.5)],
            documents=[DOCUMENT, "plain"],
            metadatas=[{"tag": METADATA_VALUE}, {"tag": "plain"}],
        )
        assert collection.query(
            query_embeddings=[EMBEDDING], n_results=2, where={"tag": METADATA_VALUE}
        )["ids"] == [["a"]]
        assert collection.get(ids=["a"], include=["documents"])["documents"] == [DOCUMENT]
        collections["sync"] = str(collection.id)
        with pytest.raises(NotFoundError) as sync_error:
            client.get_collection("no-such-collection")
        assert sync_error.value.trace_id is not None
        missing["sync"] = sync_error.value.trace_id

        async def workflow(client: AsyncClientAPI) -> tuple[str, str]:
            collection = await client.create_collection("async-client")
            await collection.upsert(
                ids=["c"], embeddings=[EMBEDDING], metadatas=[{"tag": METADATA_VALUE}]
            )
            result = await collection.query(query_embeddings=[EMBEDDING], n_results=1)
            assert result["ids"] == [["c"]]
            with pytest.raises(NotFoundError) as error:
                await client.get_collection("no-such-collection")
            assert error.value.trace_id is not None
            return str(collection.id), error.value.trace_id

        # On a thread of its own: asyncio.run here would replace, and leave unclosed, the event
        # loop Mangum keeps on this thread once a Lambda handler has run in the process.
        with ThreadPoolExecutor(1) as thread:
            ran = thread.submit(run_async, running.server, workflow, headers=bearer())
            collections["async"], missing["async"] = ran.result()
    finally:
        close_chroma_clients()
        out = running.stop()
    return Served(out, collections, missing)


def test_server_lines_carry_route_and_collection_for_both_clients(served: Served) -> None:
    out = served.out
    for client, route in (("sync", "add"), ("sync", "query"), ("sync", "get"), ("async", "upsert")):
        (line,) = [
            line
            for line in out.logs
            if line.get("route") == RECORD_ROUTE + route
            and line.get("collection") == served.collections[client]
        ]
        assert line["status"] == (201 if route == "add" else 200)
        assert line["tenant"] == "default_tenant"
        (document,) = out.of(line["trace_id"])[1]
        assert dimensions(document) == request_dimensions(RECORD_ROUTE + route, "2xx")
    # a query from each client: its search time and the records it returned
    queries = [doc for doc in out.with_metric("QueryTime") if doc["route"] == QUERY_ROUTE]
    assert sorted(doc["RecordsReturned"][0] for doc in queries) == [1.0, 1.0]
    (upsert,) = [doc for doc in out.with_metric("RecordsWritten") if "upsert" in doc["route"]]
    assert upsert["RecordsWritten"] == [1.0]


def test_the_trace_id_of_a_client_error_finds_its_log_line(served: Served) -> None:
    for trace_id in served.missing_trace_ids.values():
        (line,), (document,) = served.out.of(trace_id)
        assert line["status"] == 404
        assert line["collection"] == "no-such-collection"
        assert document["status_class"] == "4xx"


def test_server_output_holds_no_credential_or_record(served: Served) -> None:
    assert served.out.logs
    assert_no_secret(served.out.text)
