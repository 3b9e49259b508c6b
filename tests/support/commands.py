"""The ``chroma-serverless`` command as a user runs it (a subprocess) on a running server's
storage (embedded default and ``--aws-local``) or through its HTTP API, and the records it
leaves, read back exactly with the official client."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.cli import AWS_LOCAL_BUCKET, AWS_LOCAL_TABLE

if TYPE_CHECKING:
    from tests.support.server import Server

VIAS = ["storage", "http"]


def cli_env(server: Server) -> dict[str, str]:
    """The environment that points the command at the server's storage (``--aws-local``: its
    DynamoDB table and S3 bucket on moto)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if server.moto_endpoint:
        env.update(
            CHROMA_SERVERLESS_MODE="aws",
            CHROMA_SERVERLESS_CATALOG_TABLE=AWS_LOCAL_TABLE,
            CHROMA_SERVERLESS_RECORDS_URI=f"s3://{AWS_LOCAL_BUCKET}/records",
            CHROMA_SERVERLESS_AWS_ENDPOINT=server.moto_endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
    return env


def target(server: Server, via: str) -> list[str]:
    """Command-line options for the server's storage, or for its HTTP API."""
    return ["--url", server.url] if via == "http" else ["--path", str(server.data)]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "chroma_serverless.cli", *args]


def cli(server: Server | None, *args: str, env: dict[str, str] | None = None) -> str:
    """The command's output; ``server=None``: on its own (e.g. a data directory of the test's)."""
    if env is None:
        env = dict(os.environ) if server is None else cli_env(server)
    done = subprocess.run(command(*args), env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def failing(server: Server | None, *args: str, env: dict[str, str] | None = None) -> str:
    if env is None:
        env = dict(os.environ) if server is None else cli_env(server)
    done = subprocess.run(command(*args), env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


def error_line(stderr: str) -> str:
    """The one ``error:`` line a failed command printed (after any progress lines), without
    its prefix."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert stderr.rstrip("\n").endswith(errors[0]), stderr
    return errors[0].removeprefix("error: ")


def all_records(collection: Any) -> dict[str, tuple[bytes, Any, Any, Any]]:
    got = collection.get(include=["embeddings", "documents", "uris", "metadatas"])
    return {
        record_id: (np.asarray(vector, dtype=np.float32).tobytes(), document, uri, metadata)
        for record_id, vector, document, uri, metadata in zip(
            got["ids"],
            got["embeddings"],
            got["documents"],
            got["uris"],
            got["metadatas"],
            strict=True,
        )
    }
