"""Maintenance in a tight loop beside a real server (embedded default and ``--aws-local``) while
the official client deletes and re-creates what it maintains."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from chroma_serverless.service.maintenance import maintain, maintain_all
from tests.factories import vectors
from tests.support.maintenance import errors_logged, maintenance_beside
from tests.support.server import chroma_client

if TYPE_CHECKING:
    from tests.support.server import Server


def indexed(reports: list[dict[str, Any]]) -> bool:
    """Whether any maintenance report built an index."""
    return any("scalar_indexes" in r or "vector_index" in r for r in list(reports))


@pytest.mark.e2e
def test_deleting_collections_while_they_are_maintained(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Maintenance in a tight loop on the live collection while the client deletes it (or its
    database) and creates one of the same name again: every call succeeds, nothing logs an
    error, and no record outlives its delete."""
    import chromadb
    from chromadb.errors import NotFoundError

    admin = chroma_client(server)
    admin.reset()
    admin_api = chromadb.AdminClient(admin.get_settings())
    admin_api.create_database("racing")
    client = chroma_client(server, chroma_client_auth_provider=None)
    client.set_database("racing")
    maintainer = maintenance_beside(server, monkeypatch)
    server_log_start = server.log.stat().st_size
    live: list[str] = []
    stop = threading.Event()
    failures: list[BaseException] = []
    reports: list[dict[str, Any]] = []

    def maintain_live() -> None:
        while not stop.is_set():
            try:
                if live:
                    reports.append(maintain(maintainer, live[-1]))
            except BaseException as exc:  # reported by the test, not lost in the thread
                failures.append(exc)
                return

    worker = threading.Thread(target=maintain_live)
    rounds, deadline = 0, time.monotonic() + 6
    with caplog.at_level(logging.INFO, logger="chroma_serverless"):
        worker.start()
        try:
            # at least 6 s and 4 rounds, and (under load, up to a minute more) until the
            # maintainer has caught a live collection with records at least once
            while (
                time.monotonic() < deadline or rounds < 4 or not indexed(reports)
            ) and time.monotonic() < deadline + 60:
                collection = client.create_collection("racing")
                live.append(str(collection.id))
                for batch in range(3):  # three fragments: maintenance compacts them
                    ids = [f"r{rounds}-{batch}-{i}" for i in range(40)]
                    metadatas: list[Any] = [{"round": rounds, "i": i} for i in range(40)]
                    collection.add(ids=ids, embeddings=vectors(40), metadatas=metadatas)
                assert collection.count() == 120  # nothing from an earlier incarnation
                if rounds % 3 == 2:
                    admin_api.delete_database("racing")
                    admin_api.create_database("racing")
                else:
                    client.delete_collection("racing")
                with pytest.raises(NotFoundError):
                    client.get_collection("racing")
                rounds += 1
        finally:
            stop.set()
            worker.join()

    assert failures == []
    # the race was run: maintenance built indexes on live collections and met deleted ones
    assert indexed(reports)
    assert any(r.get("skipped") == "deleted" for r in reports)
    assert errors_logged(caplog) == []
    written = server.log.read_text()[server_log_start:]
    assert "Traceback" not in written and "internal error" not in written
    # Everything the maintainer wrote into a dropped table, it removed itself.
    assert maintainer.records.collection_ids() == []
    assert maintain_all(maintainer) == []
