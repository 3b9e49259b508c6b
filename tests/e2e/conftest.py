"""A real server in both modes (``chroma-serverless run`` in a subprocess, stopped by its PID)
and the official client on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.server import Server, chroma_client, serve_mode

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chromadb.api import ClientAPI


@pytest.fixture(scope="session", params=["embedded", "aws-local"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``chroma-serverless run --port 0 --allow-reset [--aws-local]`` in a subprocess, stopped by
    its PID: the embedded default, and the AWS storage (DynamoDB, S3) on moto."""
    yield from serve_mode(request.param, tmp_path_factory.mktemp("server"))


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
def client(server: Server) -> ClientAPI:
    """The official client on a freshly reset server."""
    official = chroma_client(server)
    official.reset()
    return official
