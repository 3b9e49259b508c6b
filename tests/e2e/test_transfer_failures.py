"""``import`` and ``export`` when something is wrong, as a user runs them (real subprocesses)
on a running server's storage and through its HTTP API: each failure is one ``error:`` line and
exit 1, never a traceback; a failed import leaves no collection it created behind, and one into
an existing collection keeps it; a column named on the command line that the file lacks is an
error, never silently ignored; an export never drops what a directory held."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from tests.support.commands import VIAS, cli, error_line, failing, target

if TYPE_CHECKING:
    from pathlib import Path

    from chromadb.api import ClientAPI

    from tests.support.server import Server

pytestmark = pytest.mark.e2e


def vector(*values: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One record's embedding, as the client takes a batch of them."""
    return np.array([values], dtype=np.float32)


def jsonl(*records: Any) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


GOOD = {"id": "a", "embedding": [1.0, 2.0], "document": "x", "k": 1}
# name -> (file name, content, extra options, what the error says)
BAD_FILES: dict[str, tuple[str, str, list[str], str]] = {
    "unknown column": ("t.csv", "id,vector\na,[1]\n", ["--embedding", "vec"], "No column 'vec'"),
    "malformed line": ("m.jsonl", jsonl(GOOD, "{not json"), [], "record 2"),
    "wrong dimension": (
        "d.jsonl",
        jsonl(GOOD, {"id": "b", "embedding": [1.0, 2.0, 3.0]}),
        [],
        "same non-zero dimension",
    ),
    "duplicate ids": ("u.jsonl", jsonl(GOOD, GOOD), [], "duplicates of: a"),
    "bad metadata": ("b.jsonl", jsonl({**GOOD, "k": {"nested": 1}}), [], "metadata"),
    "not parquet": ("p.parquet", "id,embedding\n", [], "is not a Parquet file"),
    "later chunk": ("l.jsonl", jsonl(GOOD, GOOD | {"id": "b"}, "{not json"), [], "record 3"),
    "later dimension": (
        "ld.jsonl",
        jsonl(GOOD, {"id": "b", "embedding": [1.0, 2.0, 3.0]}),
        ["--batch-size", "1"],
        "dimension",
    ),
    # a column named on the command line that the file lacks
    "named embedding": ("e.jsonl", jsonl(GOOD), ["--embedding", "nosuchcol"], "'nosuchcol'"),
    "named metadata columns": (
        "c.jsonl",
        jsonl(GOOD),
        ["--metadata-columns", "k,nosuch"],
        "'nosuch'",
    ),
    "named metadata": ("n.jsonl", jsonl(GOOD), ["--metadata", "meta"], "'meta'"),
    "named document": ("o.jsonl", jsonl(GOOD), ["--document", "text"], "'text'"),
    "named csv column": ("c.csv", "id,k\na,1\n", ["--metadata-columns", "nosuch"], "'nosuch'"),
}


def collections(server: Server) -> list[str]:
    found = httpx.get(
        f"{server.url}/api/v2/tenants/default_tenant/databases/default_database/collections"
    )
    return [c["name"] for c in found.json()]


def tables(server: Server) -> list[str]:
    """Record tables left on an embedded server's storage (on moto, the API is the witness)."""
    if server.moto_endpoint:
        return []
    return sorted(p.name for p in (server.data / "records").glob("*.lance"))


# ------------------------------------------------------------------ import


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_failed_import_leaves_no_trace(
    client: ClientAPI, server: Server, tmp_path: Path, case: str, via: str
) -> None:
    # GIVEN a file that cannot be imported, whole or past its first chunk
    name, content, options, says = BAD_FILES[case]
    source = tmp_path / name
    source.write_text(content)
    state = tmp_path / "state"

    # WHEN it is imported into a new collection (two records per write)
    args = ["import", str(source), "--collection", "fresh", "--state-dir", str(state)]
    stderr = failing(server, *args, "--batch-size", "2", *options, *target(server, via))

    # THEN the command says why in one line, and neither the collection nor records nor a
    # checkpoint is left
    assert says in error_line(stderr)
    assert collections(server) == []
    assert tables(server) == []
    assert list(state.glob("import-*.json")) == []


@pytest.mark.parametrize("via", VIAS)
def test_a_failed_import_into_an_existing_collection_keeps_it_and_resumes(
    client: ClientAPI, server: Server, tmp_path: Path, via: str
) -> None:
    # GIVEN an existing collection, and a file whose third record is malformed
    existing = client.create_collection("existing", metadata={"owner": "me"})
    existing.add(ids=["old"], embeddings=vector(0.0, 1.0))
    source = tmp_path / "l.jsonl"
    source.write_text(jsonl(GOOD, GOOD | {"id": "b"}, "{not json", GOOD | {"id": "d"}))
    args = ["import", str(source), "--collection", "existing", "--batch-size", "2"]
    args += ["--state-dir", str(tmp_path / "state"), *target(server, via)]

    # WHEN it is imported into it
    assert "record 3" in error_line(failing(server, *args))

    # THEN the collection stays, with the records of the chunk written before the failure,
    # and the checkpoint records them
    assert sorted(existing.get()["ids"]) == ["a", "b", "old"]
    assert client.get_collection("existing").metadata == {"owner": "me"}
    (saved,) = [json.loads(p.read_text()) for p in (tmp_path / "state").glob("import-*.json")]
    assert (saved["records"], saved["done"], saved["created"]) == (2, False, False)


# ------------------------------------------------------------------ export


@pytest.mark.parametrize("via", VIAS)
def test_an_export_into_an_earlier_export_merges_its_manifest(
    client: ClientAPI, server: Server, tmp_path: Path, via: str
) -> None:
    # GIVEN an export of two collections
    for name in ("one", "two"):
        client.create_collection(name).add(ids=["a"], embeddings=vector(1.0, 2.0))
    backup = tmp_path / "backup"
    cli(server, "export", str(backup), *target(server, via))

    # WHEN one of them changes and is exported again into the same directory, in JSONL
    client.get_collection("one").add(ids=["b"], embeddings=vector(3.0, 4.0))
    cli(
        server,
        "export",
        str(backup),
        "--collection",
        "one",
        "--format",
        "jsonl",
        *target(server, via),
    )

    # THEN the manifest still lists both, with the new entry of the one exported again
    manifest = json.loads((backup / "manifest.json").read_text())
    entries = [(c["name"], c["file"], c["records"]) for c in manifest["collections"]]
    assert entries == [("one", "one.jsonl", 2), ("two", "two.parquet", 1)]
    assert sorted(p.name for p in backup.iterdir()) == ["manifest.json", "one.jsonl", "two.parquet"]


def test_an_export_refuses_a_file_a_foreign_directory_and_another_databases_export(
    client: ClientAPI, server: Server, tmp_path: Path
) -> None:
    client.create_collection("one")
    storage = target(server, "storage")
    # a file
    file = tmp_path / "file.txt"
    file.write_text("mine")
    assert "is a file" in error_line(failing(server, "export", str(file), *storage))
    assert file.read_text() == "mine"
    # a directory that holds something else
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_text("meow")
    assert "not empty" in error_line(failing(server, "export", str(photos), *storage))
    assert [p.name for p in photos.iterdir()] == ["cat.jpg"]
    # the export of another database
    backup = tmp_path / "backup"
    cli(server, "export", str(backup), *storage)
    httpx.post(f"{server.url}/api/v2/tenants/default_tenant/databases", json={"name": "other"})
    other = ["export", str(backup), "--database", "other", *storage]
    assert "holds an export of database default_database" in error_line(failing(server, *other))


# ------------------------------------------------------------------ no tracebacks


def test_an_unreachable_url_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    source = tmp_path / "a.jsonl"
    source.write_text(jsonl(GOOD))
    state = ["--state-dir", str(tmp_path / "state")]
    for args in (
        ["export", str(tmp_path / "out")],
        ["import", str(source), "--collection", "abc", *state],
        ["restore", "abc", "--list"],
    ):
        assert error_line(failing(None, *args, "--url", url)).startswith(f"cannot reach {url}")
    assert not (tmp_path / "out").exists()
