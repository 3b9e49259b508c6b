"""Auth end to end on real servers (embedded default and --aws-local) started with --auth:
every route x every kind of caller, the official client with both token transports, and that
token secrets reach neither the catalog nor the logs."""

from __future__ import annotations

import re
import secrets
import sqlite3
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.factories import f32
from tests.support.auth import AuthServer
from tests.support.server import Server, close_chroma_clients

if TYPE_CHECKING:
    from collections.abc import Iterator

API = "/api/v2"
ACME = f"{API}/tenants/acme/databases/main"
OTHER = f"{API}/tenants/other/databases/main"
CALLERS = ("none", "bad", "reader", "writer", "admin", "other_writer")


@pytest.fixture(scope="module", params=["embedded", "aws-local"])
def auth(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthServer]:
    admin = "csk-" + secrets.token_urlsafe(32)
    extra = ("--aws-local",) if request.param == "aws-local" else ()
    server = Server(
        tmp_path_factory.mktemp("auth"),
        "--auth",
        "--allow-reset",
        *extra,
        env={"CHROMA_SERVERLESS_ADMIN_TOKEN": admin},
    )
    running = AuthServer(server, request.param, {"admin": admin})
    with httpx.Client(base_url=server.url, headers=running.headers("admin")) as admin_api:
        for tenant in ("acme", "other"):  # first: a token's tenant and databases must exist
            assert admin_api.post(f"{API}/tenants", json={"name": tenant}).status_code == 200
            path = f"{API}/tenants/{tenant}/databases"
            assert admin_api.post(path, json={"name": "main"}).status_code == 200
    running.tokens["reader"] = running.create_token("rita", "acme", "main", "reader")
    running.tokens["writer"] = running.create_token("walt", "acme", "main", "writer")
    running.tokens["other_writer"] = running.create_token("olga", "other", "main", "writer")
    yield running
    close_chroma_clients()
    server.stop()
    assert server.errors_logged() == []


# ------------------------------------------------------------------ the matrix


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # {acme} is the acme collection's id, {name} its name, {tag} a fresh suffix
    allowed: frozenset[str]  # callers that get the success status
    status: int = 200
    body: Any = None
    setup: str = ""  # "database" or "collection": a fresh one named {tag} first


EVERYONE = frozenset(CALLERS)
KNOWN = frozenset({"reader", "writer", "admin", "other_writer"})
READERS = frozenset({"reader", "writer", "admin"})
WRITERS = frozenset({"writer", "admin"})
ADMIN = frozenset({"admin"})
RECORD = {"ids": ["r1"], "embeddings": [[1.0, 0.0]]}

CASES = [
    Case("heartbeat", "GET", f"{API}/heartbeat", EVERYONE),
    Case("root heartbeat", "GET", API, EVERYONE),
    Case("version", "GET", f"{API}/version", EVERYONE),
    Case("pre-flight-checks", "GET", f"{API}/pre-flight-checks", EVERYONE),
    Case("healthcheck", "GET", f"{API}/healthcheck", EVERYONE),
    Case("identity", "GET", f"{API}/auth/identity", KNOWN),
    Case("create tenant", "POST", f"{API}/tenants", ADMIN, body={"name": "t-{tag}"}),
    Case("get tenant", "GET", f"{API}/tenants/acme", READERS),
    Case(
        "create database", "POST", f"{API}/tenants/acme/databases", ADMIN, body={"name": "d-{tag}"}
    ),
    Case("list databases", "GET", f"{API}/tenants/acme/databases", READERS),
    Case("get database", "GET", ACME, READERS),
    Case(
        "delete database",
        "DELETE",
        f"{API}/tenants/acme/databases/{{tag}}",
        ADMIN,
        setup="database",
    ),
    Case("create collection", "POST", f"{ACME}/collections", WRITERS, body={"name": "c-{tag}"}),
    Case("list collections", "GET", f"{ACME}/collections", READERS),
    Case("count collections", "GET", f"{ACME}/collections_count", READERS),
    Case("get collection", "GET", f"{ACME}/collections/{{name}}", READERS),
    Case("get collection by id", "GET", f"{ACME}/collections/by-id/{{acme}}", READERS),
    Case(
        "modify collection",
        "PUT",
        f"{ACME}/collections/{{acme}}",
        WRITERS,
        body={"new_metadata": {"v": 1}},
    ),
    Case("delete collection", "DELETE", f"{ACME}/collections/{{tag}}", WRITERS, setup="collection"),
    Case("fork", "POST", f"{ACME}/collections/{{acme}}/fork", WRITERS, body={"new_name": "{tag}"}),
    Case("fork count", "GET", f"{ACME}/collections/{{acme}}/fork_count", READERS),
    Case("indexing status", "GET", f"{ACME}/collections/{{acme}}/indexing_status", READERS),
    Case("list versions", "GET", f"{ACME}/collections/{{acme}}/versions", ADMIN),
    # In place to the latest version: the records stay as they are for the other cases.
    Case(
        "restore",
        "POST",
        f"{ACME}/collections/{{acme}}/restore",
        ADMIN,
        body={"to": "2100-01-01T00:00:00"},
    ),
    Case("add", "POST", f"{ACME}/collections/{{acme}}/add", WRITERS, 201, body=RECORD),
    Case("update", "POST", f"{ACME}/collections/{{acme}}/update", WRITERS, body=RECORD),
    Case("upsert", "POST", f"{ACME}/collections/{{acme}}/upsert", WRITERS, body=RECORD),
    Case(
        "delete records",
        "POST",
        f"{ACME}/collections/{{acme}}/delete",
        WRITERS,
        body={"ids": ["gone"]},
    ),
    Case("get", "POST", f"{ACME}/collections/{{acme}}/get", READERS, body={}),
    Case(
        "query",
        "POST",
        f"{ACME}/collections/{{acme}}/query",
        READERS,
        body={"query_embeddings": [[1.0, 0.0]], "n_results": 1},
    ),
    Case("count", "GET", f"{ACME}/collections/{{acme}}/count", READERS),
    Case(
        "search",
        "POST",
        f"{ACME}/collections/{{acme}}/search",
        READERS,
        body={"searches": [{"rank": {"$knn": {"query": [1.0, 0.0]}}}]},
    ),
    Case("reset", "POST", f"{API}/reset", ADMIN),
]
# An admin's reset would wipe the fixtures mid-module; it runs last, in its own test.
MATRIX = [
    (case, caller)
    for case in CASES
    for caller in CALLERS
    if (case.name, caller) != ("reset", "admin")
]


def expected(case: Case, caller: str) -> tuple[int, str | None]:
    if caller in case.allowed:
        return case.status, None
    if caller in ("none", "bad"):
        return 401, "AuthorizationError"
    return 403, "AuthError"


@pytest.fixture(scope="module")
def acme_collection(auth: AuthServer) -> dict[str, Any]:
    with httpx.Client(base_url=auth.server.url, headers=auth.headers("admin")) as api:
        response = api.post(f"{ACME}/collections", json={"name": "docs"})
        assert response.status_code == 200, response.text
        collection: dict[str, Any] = response.json()
        add = api.post(f"{ACME}/collections/{collection['id']}/add", json=RECORD)
        assert add.status_code == 201
    return collection


@pytest.mark.parametrize(
    ("case", "caller"), MATRIX, ids=[f"{case.name}-{caller}" for case, caller in MATRIX]
)
def test_route_access(
    auth: AuthServer, acme_collection: dict[str, Any], case: Case, caller: str
) -> None:
    tag = f"x{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=auth.server.url) as http:
        admin = auth.headers("admin")
        if case.setup == "database":
            assert (
                http.post(
                    f"{API}/tenants/acme/databases", json={"name": tag}, headers=admin
                ).status_code
                == 200
            )
        if case.setup == "collection":
            assert (
                http.post(f"{ACME}/collections", json={"name": tag}, headers=admin).status_code
                == 200
            )
        path = case.path.format(acme=acme_collection["id"], name=acme_collection["name"], tag=tag)
        body = case.body
        if isinstance(body, dict):
            body = {k: v.format(tag=tag) if isinstance(v, str) else v for k, v in body.items()}
        response = http.request(case.method, path, json=body, headers=auth.headers(caller))

    status, error = expected(case, caller)
    assert response.status_code == status, (caller, response.text)
    if error is not None:
        assert response.json()["error"] == error
        assert "chroma-trace-id" in response.headers


def test_other_tenant_cannot_learn_that_a_collection_exists(
    auth: AuthServer, acme_collection: dict[str, Any]
) -> None:
    """Through its own tenant's path, another tenant's collection id looks like no collection."""
    headers = auth.headers("other_writer")
    with httpx.Client(base_url=auth.server.url, headers=headers) as http:
        existing = http.post(f"{OTHER}/collections/{acme_collection['id']}/get", json={})
        missing = http.post(f"{OTHER}/collections/{uuid.uuid4()}/get", json={})
        by_id = http.get(f"{OTHER}/collections/by-id/{acme_collection['id']}")
    assert existing.status_code == missing.status_code == by_id.status_code == 404
    assert existing.json()["error"] == missing.json()["error"] == "NotFoundError"


def test_reader_lists_only_its_databases(auth: AuthServer) -> None:
    with httpx.Client(base_url=auth.server.url) as http:
        http.post(
            f"{API}/tenants/acme/databases", json={"name": "hidden"}, headers=auth.headers("admin")
        )
        listed = http.get(f"{API}/tenants/acme/databases", headers=auth.headers("reader"))
    assert [d["name"] for d in listed.json()] == ["main"]


# ------------------------------------------------------------------ the official client


@pytest.mark.parametrize("transport", ["Authorization", "X-Chroma-Token"])
def test_official_client_with_either_token_transport(auth: AuthServer, transport: str) -> None:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.HttpClient(
        host=auth.server.host,
        port=auth.server.port,
        tenant="acme",
        database="main",
        settings=Settings(
            anonymized_telemetry=False,
            chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
            chroma_client_auth_credentials=auth.tokens["writer"],
            chroma_auth_token_transport_header=transport,
        ),
    )
    collection = client.get_or_create_collection(f"via-{transport.lower()}")
    collection.upsert(ids=["a"], embeddings=f32([[1.0, 2.0]]), documents=["hello"])
    assert collection.get(ids=["a"])["documents"] == ["hello"]
    assert client.get_user_identity().tenant == "acme"


def test_official_client_adopts_the_tokens_tenant_and_database(auth: AuthServer) -> None:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.HttpClient(
        host=auth.server.host,
        port=auth.server.port,
        settings=Settings(
            anonymized_telemetry=False,
            chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
            chroma_client_auth_credentials=auth.tokens["reader"],
            chroma_overwrite_singleton_tenant_database_access_from_auth=True,
        ),
    )
    assert (client.tenant, client.database) == ("acme", "main")
    assert "docs" in [c.name for c in client.list_collections()]


@pytest.mark.usefixtures("close_sessions_on_stop")
def test_official_client_without_a_token_is_refused(auth: AuthServer) -> None:
    import chromadb
    from chromadb.config import Settings

    with pytest.raises(Exception, match="Unauthorized|AuthorizationError"):
        chromadb.HttpClient(
            host=auth.server.host,
            port=auth.server.port,
            settings=Settings(anonymized_telemetry=False),
        )


# ------------------------------------------------------------------ secrets stay secret


def test_token_secrets_are_stored_only_as_hashes(auth: AuthServer) -> None:
    secrets_ = list(auth.tokens.values())
    if auth.mode == "embedded":
        catalog = auth.server.data / "catalog.sqlite3"
        with sqlite3.connect(catalog) as db:
            rows = db.execute("SELECT * FROM tokens").fetchall()
        stored = repr(rows) + "".join(
            p.read_bytes().decode("latin-1") for p in auth.server.data.glob("catalog.sqlite3*")
        )
    else:
        import boto3

        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=auth.server.moto_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        stored = repr(dynamodb.scan(TableName="chroma-catalog")["Items"])
    assert len(re.findall(r"[0-9a-f]{64}", stored)) >= len(secrets_)  # the SHA-256 hashes
    for secret in secrets_:
        assert secret not in stored


def test_token_list_never_shows_secrets(auth: AuthServer) -> None:
    listing = auth.tokens_cli("list")
    assert "rita" in listing and "olga" in listing
    for secret in auth.tokens.values():
        assert secret not in listing


def test_tokens_never_reach_the_server_log(auth: AuthServer) -> None:
    log = auth.server.log.read_text()
    for secret in auth.tokens.values():
        assert secret not in log


def test_revoked_token_is_refused(auth: AuthServer) -> None:
    secret = auth.create_token("temp", "acme", "main", "reader")
    token_id = next(
        line.split()[0] for line in auth.tokens_cli("list").splitlines() if " temp " in line
    )
    with httpx.Client(base_url=auth.server.url) as http:
        headers = {"Authorization": f"Bearer {secret}"}
        assert http.get(f"{API}/auth/identity", headers=headers).status_code == 200
        auth.tokens_cli("revoke", token_id)
        assert http.get(f"{API}/auth/identity", headers=headers).status_code == 401


def test_zz_admin_reset_keeps_tokens(auth: AuthServer) -> None:
    """Last in the module: an admin's reset wipes data but no one is locked out."""
    with httpx.Client(base_url=auth.server.url) as http:
        assert http.post(f"{API}/reset", headers=auth.headers("admin")).json() is True
        identity = http.get(f"{API}/auth/identity", headers=auth.headers("reader"))
    assert identity.json() == {"user_id": "rita", "tenant": "acme", "databases": ["main"]}
