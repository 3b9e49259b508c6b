"""The command line's front door: its version, and help and argument errors that answer at
once, without loading a storage engine."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from chroma_serverless import __version__

if TYPE_CHECKING:
    from pathlib import Path

ENGINES = {"lancedb", "pyarrow", "boto3", "botocore", "fastapi", "uvicorn", "onnxruntime"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-X", "importtime", "-m", "chroma_serverless.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def imported(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """The top-level packages a ``-X importtime`` run imported."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return {line.split("|")[-1].strip().split(".")[0] for line in lines[1:]}


def test_version_prints_the_package_version() -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"chroma-serverless {__version__}"
    assert not imported(proc) & ENGINES


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("--help",), 0, "usage: chroma-serverless"),
        (("import", "--help"), 0, "--metadata-columns"),
        (("run", "--port", "eighty"), 2, "invalid int value: 'eighty'"),
        (("tokens", "create", "--user", "ana"), 2, "--role"),
        (("export",), 2, "destination"),
    ],
)
def test_help_and_argument_errors_load_no_storage_engine(
    args: tuple[str, ...], code: int, says: str
) -> None:
    proc = cli(*args)
    assert proc.returncode == code
    assert says in proc.stdout + proc.stderr
    assert not imported(proc) & ENGINES


def test_an_import_of_a_missing_file_fails_before_opening_storage(tmp_path: Path) -> None:
    proc = cli("import", "/no/such/file.parquet", "--collection", "docs", "--path", str(tmp_path))
    assert proc.returncode == 1
    assert "error: No such file or directory: /no/such/file.parquet" in proc.stderr
    assert not imported(proc) & {"lancedb", "boto3"}
