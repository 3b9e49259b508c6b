"""The app answers in-process (the same smoke test through a real server is
``tests/e2e/test_smoke.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def test_heartbeat_in_process(api: TestClient) -> None:
    assert "nanosecond heartbeat" in api.get("/api/v2/heartbeat").json()
