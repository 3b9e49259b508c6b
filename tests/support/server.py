"""A real server (``chroma-serverless run`` in a subprocess, stopped by its PID) and the official
client's sync, async and admin clients on it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from chromadb.api import AdminAPI, AsyncClientAPI, ClientAPI

T = TypeVar("T")


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


def admin_client(server: Server) -> AdminAPI:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.AdminClient(
        ChromaSettings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host=server.host,
            chroma_server_http_port=server.port,
            anonymized_telemetry=False,
            allow_reset=True,
        )
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
