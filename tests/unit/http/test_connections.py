"""Error answers keep the client's keep-alive connection, under real uvicorn (issue 23, item 3):
the official client reuses its connection, so a closed one fails its next call."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

from tests.support.app import app_of

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chroma_serverless.service.service import Service
    from chroma_serverless.types import Collection

DB = "/api/v2/tenants/default_tenant/databases/default_database"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def served(service: Service) -> Iterator[int]:
    """The app over ``service`` under uvicorn in a thread, on a free port (stopped after)."""
    config = uvicorn.Config(app_of(service), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(30)


def request(
    connection: http.client.HTTPConnection, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    content = None if body is None else json.dumps(body)
    connection.request(method, path, body=content, headers={"content-type": "application/json"})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), json.loads(response.read())


def test_error_answers_keep_the_connection_and_log_once_without_the_message(
    service: Service, served: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a collection whose count fails inside the server, and log handlers
    created = service.create_collection(
        "default_tenant", "default_database", "docs", None, None, False
    )
    secret = "a filter value"

    def broken(collection: Collection) -> int:
        raise RuntimeError(secret)

    monkeypatch.setattr(service.records, "count", broken)
    ours, servers = Records(), Records()
    logging.getLogger("chroma_serverless").addHandler(ours)
    logging.getLogger("uvicorn.error").addHandler(servers)
    connection = http.client.HTTPConnection("127.0.0.1", served, timeout=30)
    try:
        # WHEN one connection carries a 500, a 400, a 404 and then a good request
        status, headers, body = request(connection, "GET", f"{DB}/collections/{created.id}/count")
        assert (status, body["error"]) == (500, "InternalError")
        assert headers.get("connection", "").lower() != "close"
        socket = connection.sock
        status, _, body = request(connection, "POST", f"{DB}/collections", {"name": ""})
        assert (status, body["error"]) == (400, "InvalidArgumentError")
        status, _, _ = request(connection, "GET", f"{DB}/collections/nosuch")
        assert status == 404
        status, _, body = request(connection, "GET", "/api/v2/heartbeat")
        # THEN every answer came on the same connection
        assert status == 200 and "nanosecond heartbeat" in body
        assert connection.sock is socket
    finally:
        connection.close()
        logging.getLogger("chroma_serverless").removeHandler(ours)
        logging.getLogger("uvicorn.error").removeHandler(servers)
    # AND the internal error is one line, with the frame that raised and not the message
    (error,) = [r for r in ours.records if r.levelno >= logging.ERROR]
    line = error.getMessage()
    assert line.startswith("internal error on GET") and "in broken" in line
    assert secret not in line and error.exc_info is None
    assert [r.getMessage() for r in servers.records if r.levelno >= logging.ERROR] == []
