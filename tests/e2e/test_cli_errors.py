"""``run``, ``maintain``, ``tokens`` and ``users`` as a user runs them (real subprocesses): a
mistake is one ``error:`` line and exit 1, never a traceback, never a silent success, and never
a change to storage: ``maintain`` takes a collection's name like every other command and drops
nothing for a name it does not know; ``tokens`` and ``users`` take ``--path`` after the action
too, refuse a data directory that is not there (creating none), refuse an unknown tenant or
database, and say plainly when a token covers every tenant or database."""

from __future__ import annotations

import json
import socket
import subprocess
from typing import TYPE_CHECKING

import numpy as np
import pytest

from tests.support.commands import cli, command, error_line, failing, target

if TYPE_CHECKING:
    from pathlib import Path

    from chromadb.api import ClientAPI

    from tests.support.server import Server

pytestmark = pytest.mark.e2e


# ------------------------------------------------------------------ run


def test_run_on_a_busy_port_or_an_impossible_path_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        says = error_line(failing(None, "run", "--port", port, "--path", str(tmp_path / "d")))
        assert says == f"Cannot listen on 127.0.0.1:{port}: Address already in use"
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    says = error_line(failing(None, "run", "--port", "0", "--path", str(blocker / "data")))
    assert says == f"Not a directory: {blocker / 'data'}"


# ------------------------------------------------------------------ maintain


def test_maintain_takes_a_collection_name_and_drops_nothing_it_does_not_know(
    client: ClientAPI, server: Server
) -> None:
    # GIVEN a collection with records
    products = client.create_collection("products")
    products.add(ids=["a", "b"], embeddings=np.ones((2, 3), dtype=np.float32))
    storage = target(server, "storage")

    # WHEN maintenance is asked for a name no collection has (nor an id)
    says = error_line(failing(server, "maintain", "--collection", "products2", *storage))
    assert says == "Collection [products2] does not exist"
    unknown = "00000000-0000-0000-0000-000000000000"
    assert "does not exist" in error_line(failing(server, "maintain", "--id", unknown, *storage))

    # THEN nothing is dropped
    assert products.count() == 2

    # AND by name (or by id) it maintains that collection
    (report,) = [
        json.loads(line)
        for line in cli(server, "maintain", "--collection", "products", *storage).splitlines()
    ]
    assert report["collection"] == str(products.id)
    (again,) = [
        json.loads(line)
        for line in cli(server, "maintain", "--id", str(products.id), *storage).splitlines()
    ]
    assert again["collection"] == str(products.id)
    assert products.count() == 2


# ------------------------------------------------------------------ tokens and users


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory of an embedded server, with its catalog (default tenant and
    database) and a tenant ``acme`` with a database ``main``."""
    directory = tmp_path / "data"
    directory.mkdir()
    script = (
        "import sys, pathlib\n"
        "from chroma_serverless.settings import Settings\n"
        "from chroma_serverless.wiring import build_catalog\n"
        "catalog = build_catalog(Settings.from_env().replace(path=pathlib.Path(sys.argv[1])))\n"
        "catalog.create_tenant('acme')\n"
        "catalog.create_database('acme', 'main')\n"
    )
    subprocess.run([*command()[:1], "-c", script, str(directory)], check=True)
    return directory


@pytest.mark.parametrize("kind", ["tokens", "users"])
def test_path_works_before_and_after_the_action(data: Path, kind: str) -> None:
    scope = ["--user", "ana", "--tenant", "acme", "--databases", "main", "--role", "reader"]
    cli(None, kind, "create", *scope, "--path", str(data))
    before = cli(None, kind, "--path", str(data), "list")
    after = cli(None, kind, "list", "--path", str(data))
    assert before == after
    assert "ana" in after and "tenant acme databases main" in after


@pytest.mark.parametrize("kind", ["tokens", "users"])
def test_a_data_directory_that_is_not_there_is_an_error_and_not_created(
    tmp_path: Path, kind: str
) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    for args in (["list", "--path", str(missing)], ["--path", str(missing), "list"]):
        assert error_line(failing(None, kind, *args)).startswith(f"No data directory at {missing}")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("kind", ["tokens", "users"])
def test_an_unknown_tenant_or_database_is_an_error(data: Path, kind: str) -> None:
    base = [kind, "create", "--user", "ana", "--role", "reader", "--path", str(data)]
    says = error_line(failing(None, *base, "--tenant", "nosuch_tenant"))
    assert says == "Tenant [nosuch_tenant] not found"
    says = error_line(failing(None, *base, "--tenant", "acme", "--databases", "main,nosuch"))
    assert "nosuch" in says
    assert "ana" not in cli(None, kind, "list", "--path", str(data))


def test_a_token_for_every_tenant_says_so(data: Path) -> None:
    # GIVEN the help of tokens create
    helped = subprocess.run(
        command("tokens", "create", "--help"), capture_output=True, text=True, check=True
    ).stdout
    assert "EVERY tenant" in " ".join(helped.split())

    # WHEN a token is created without --tenant
    done = subprocess.run(
        command("tokens", "create", "--user", "ana", "--role", "admin", "--path", str(data)),
        capture_output=True,
        text=True,
        check=True,
    )

    # THEN the output says it covers every tenant and database
    assert "tenant * (every tenant) databases * (every database)" in done.stdout
    assert "note: this covers EVERY tenant" in done.stderr
