"""HTTP Basic auth end to end on real servers (embedded default and --aws-local) started with
--auth: users made with the ``users`` CLI, the official client's BasicAuthClientProvider (sync and
async), each role's reach, refusals, revocation, and that passwords are stored only as scrypt
hashes and never printed or logged after creation."""

from __future__ import annotations

import base64
import re
import secrets
import sqlite3
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from chroma_serverless.auth.passwords import verify_password
from tests.factories import f32
from tests.support.auth import AuthServer
from tests.support.server import Server, close_chroma_clients
from tests.support.server import run_async as run_workflow

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from chromadb.api import AdminAPI, AsyncClientAPI, ClientAPI

API = "/api/v2"
PROVIDER = "chromadb.auth.basic_authn.BasicAuthClientProvider"
# A chosen password with a colon (only the first one splits user from password) and non-ASCII.
RITA_PASSWORD = "rita's pass: ünïcode ok"


class BasicServer(AuthServer):
    """An --auth server plus the ``users`` CLI; ``passwords`` maps username -> password."""

    def __init__(self, server: Server, mode: str, admin_token: str) -> None:
        super().__init__(server, mode, {"admin": admin_token})
        self.passwords: dict[str, str] = {}

    def users_cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "chroma_serverless.cli", "users"]
            + ["--path", str(self.server.data), *args],
            env=self.cli_env(),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            # No controlling terminal, so --prompt's getpass falls back to reading stdin.
            start_new_session=True,
        )
        self.outputs.append(done.stdout + done.stderr)
        return done

    def create_user(
        self, user: str, tenant: str, databases: str, role: str, password: str | None = None
    ) -> str:
        scope = ("--user", user, "--tenant", tenant, "--databases", databases, "--role", role)
        if password is None:  # the CLI generates one and prints it last
            done = self.users_cli("create", *scope)
            assert done.returncode == 0, done.stderr
            password = done.stdout.strip().splitlines()[-1]
        else:
            done = self.users_cli("create", *scope, "--password-stdin", stdin=password + "\n")
            assert done.returncode == 0, done.stderr
            assert password not in done.stdout
        self.passwords[user] = password
        return password

    def basic(self, user: str, password: str | None = None) -> dict[str, str]:
        credentials = f"{user}:{self.passwords[user] if password is None else password}"
        return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


@pytest.fixture(scope="module", params=["embedded", "aws-local"])
def basic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BasicServer]:
    admin = "csk-" + secrets.token_urlsafe(32)
    extra = ("--aws-local",) if request.param == "aws-local" else ()
    server = Server(
        tmp_path_factory.mktemp("basic"),
        "--auth",
        *extra,
        env={"CHROMA_SERVERLESS_ADMIN_TOKEN": admin},
    )
    running = BasicServer(server, request.param, admin)
    with httpx.Client(base_url=server.url, headers=running.headers("admin")) as admin_api:
        for tenant in ("acme", "other"):  # first: a user's tenant and databases must exist
            assert admin_api.post(f"{API}/tenants", json={"name": tenant}).status_code == 200
            path = f"{API}/tenants/{tenant}/databases"
            assert admin_api.post(path, json={"name": "main"}).status_code == 200
    running.create_user("rita", "acme", "main", "reader", RITA_PASSWORD)
    running.create_user("walt", "acme", "main", "writer")
    running.create_user("ada", "acme", "*", "admin")
    with httpx.Client(base_url=server.url, headers=running.headers("admin")) as admin_api:
        docs = admin_api.post(
            f"{API}/tenants/acme/databases/main/collections", json={"name": "docs"}
        )
        add = admin_api.post(
            f"{API}/tenants/acme/databases/main/collections/{docs.json()['id']}/add",
            json={"ids": ["d1"], "embeddings": [[1.0, 0.0]], "documents": ["hello"]},
        )
        assert add.status_code == 201, add.text
    yield running
    close_chroma_clients()
    server.stop()
    assert server.errors_logged() == []


def provider_settings(user: str, password: str, **extra: Any) -> dict[str, Any]:
    return {
        "anonymized_telemetry": False,
        "chroma_client_auth_provider": PROVIDER,
        "chroma_client_auth_credentials": f"{user}:{password}",
        **extra,
    }


def sync_client(basic: BasicServer, user: str, password: str | None = None) -> ClientAPI:
    import chromadb
    from chromadb.config import Settings

    return chromadb.HttpClient(
        host=basic.server.host,
        port=basic.server.port,
        tenant="acme",
        database="main",
        settings=Settings(**provider_settings(user, password or basic.passwords[user])),
    )


def admin_client(basic: BasicServer, user: str) -> AdminAPI:
    import chromadb
    from chromadb.config import Settings

    return chromadb.AdminClient(
        Settings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host=basic.server.host,
            chroma_server_http_port=basic.server.port,
            **provider_settings(user, basic.passwords[user]),
        )
    )


def run_async(
    basic: BasicServer,
    user: str,
    workflow: Callable[[AsyncClientAPI], Awaitable[Any]],
    password: str | None = None,
) -> Any:
    """``workflow`` on the official AsyncHttpClient. chromadb 1.5.9's async client ignores
    ``chroma_client_auth_provider``, so the provider's own headers are passed as ``headers=``."""
    from chromadb.auth.basic_authn import BasicAuthClientProvider
    from chromadb.config import Settings, System

    credentials = provider_settings(user, password or basic.passwords[user])
    provider = BasicAuthClientProvider(System(Settings(**credentials)))
    headers = {name: value.get_secret_value() for name, value in provider.authenticate().items()}

    return run_workflow(basic.server, workflow, headers=headers, tenant="acme", database="main")


ROLES = [("rita", {"read"}), ("walt", {"read", "write"}), ("ada", {"read", "write", "admin"})]


@pytest.mark.parametrize(("user", "allowed"), ROLES, ids=[user for user, _ in ROLES])
def test_sync_client_acts_with_the_users_role_and_scope(
    basic: BasicServer, user: str, allowed: set[str]
) -> None:
    from chromadb.errors import ChromaAuthError

    client = sync_client(basic, user)
    assert client.get_user_identity().user_id == user
    assert client.get_collection("docs").get(ids=["d1"])["documents"] == ["hello"]
    tag = f"x{uuid.uuid4().hex[:8]}"
    actions: dict[str, Callable[[], object]] = {
        "write": lambda: client.create_collection(f"c-{tag}").add(
            ids=["a"], embeddings=f32([[0.0, 1.0]])
        ),
        "admin": lambda: admin_client(basic, user).create_database(f"d-{tag}", tenant="acme"),
    }
    for action, run in actions.items():
        if action in allowed:
            run()
        else:
            with pytest.raises(ChromaAuthError):
                run()
    with pytest.raises(ChromaAuthError):  # no role reaches another tenant
        admin_client(basic, user).get_database("main", tenant="other")


def test_sync_client_adopts_the_users_tenant_and_database(basic: BasicServer) -> None:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.HttpClient(
        host=basic.server.host,
        port=basic.server.port,
        settings=Settings(
            **provider_settings(
                "rita",
                RITA_PASSWORD,
                chroma_overwrite_singleton_tenant_database_access_from_auth=True,
            )
        ),
    )
    assert (client.tenant, client.database) == ("acme", "main")
    assert "docs" in [c.name for c in client.list_collections()]


@pytest.mark.parametrize(("user", "allowed"), ROLES[:2], ids=[user for user, _ in ROLES[:2]])
def test_async_client_acts_with_the_users_role(
    basic: BasicServer, user: str, allowed: set[str]
) -> None:
    from chromadb.errors import ChromaAuthError

    async def workflow(client: AsyncClientAPI) -> None:
        identity = await client.get_user_identity()
        assert (identity.user_id, identity.tenant, identity.databases) == (user, "acme", ["main"])
        docs = await client.get_collection("docs")
        assert (await docs.query(query_embeddings=f32([[1.0, 0.0]]), n_results=1))["ids"] == [
            ["d1"]
        ]
        name = f"async-{uuid.uuid4().hex[:8]}"
        if "write" in allowed:
            created = await client.create_collection(name)
            await created.upsert(ids=["u"], embeddings=f32([[0.5, 0.5]]), documents=["up"])
            assert (await created.get(ids=["u"]))["documents"] == ["up"]
        else:
            with pytest.raises(ChromaAuthError):
                await client.create_collection(name)

    run_async(basic, user, workflow)


@pytest.mark.usefixtures("close_sessions_on_stop")
def test_sync_client_with_a_wrong_password_is_refused(basic: BasicServer) -> None:
    from chromadb.errors import AuthorizationError

    with pytest.raises(AuthorizationError):
        sync_client(basic, "walt", basic.passwords["walt"] + "x")


def test_async_client_with_a_wrong_password_is_refused(basic: BasicServer) -> None:
    from chromadb.errors import AuthorizationError

    wrong = basic.passwords["walt"] + "x"
    with pytest.raises(AuthorizationError):
        run_async(basic, "walt", lambda client: client.heartbeat(), wrong)


def raw_basic(credentials: bytes) -> bytes:
    return b"Basic " + base64.b64encode(credentials)


REFUSED = {
    "wrong password": raw_basic(b"walt:not-the-password"),
    "unknown user": raw_basic(b"nobody:whatever-password"),
    "empty password": raw_basic(b"walt:"),
    "empty username": raw_basic(b":password"),
    "password as username": raw_basic(b"rita's pass:x"),
    "username in another case": raw_basic(b"WALT:x"),
    "over-long username": raw_basic(b"u" * 5000 + b":password"),
    "no colon": raw_basic(b"walt"),
    "not base64": b"Basic !!!not-base64!!!",
    "bad padding": b"Basic d2FsdDp4e",
    "non-UTF-8 credentials": raw_basic(b"walt:\xff\xfe"),
    "non-ASCII header": b"Basic \xe9\xe9\xe9",
    "scheme only": b"Basic",
}


@pytest.mark.parametrize("header", REFUSED.values(), ids=list(REFUSED))
def test_bad_basic_credentials_are_a_401(basic: BasicServer, header: bytes) -> None:
    with httpx.Client(base_url=basic.server.url) as http:
        response = http.get(f"{API}/auth/identity", headers=[(b"Authorization", header)])
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "AuthorizationError"
    assert "chroma-trace-id" in response.headers


def test_revocation_takes_effect_at_once_despite_the_verification_cache(
    basic: BasicServer,
) -> None:
    first = basic.create_user("temp", "acme", "main", "reader")
    with httpx.Client(base_url=basic.server.url) as http:
        for _ in range(2):  # the second one is answered from the cache of verified credentials
            assert http.get(f"{API}/auth/identity", headers=basic.basic("temp")).status_code == 200
        assert basic.users_cli("revoke", "temp").returncode == 0
        assert http.get(f"{API}/auth/identity", headers=basic.basic("temp")).status_code == 401
        # The same username again, with another password: the old one no longer opens it.
        second = basic.create_user("temp", "acme", "main", "writer")
        old = http.get(f"{API}/auth/identity", headers=basic.basic("temp", first))
        new = http.get(f"{API}/auth/identity", headers=basic.basic("temp", second))
    assert old.status_code == 401
    assert new.status_code == 200 and new.json()["user_id"] == "temp"
    assert basic.users_cli("revoke", "temp").returncode == 0


def stored_catalog(basic: BasicServer) -> str:
    if basic.mode == "embedded":
        with sqlite3.connect(basic.server.data / "catalog.sqlite3") as db:
            rows = db.execute("SELECT * FROM basic_credentials").fetchall()
        files = basic.server.data.glob("catalog.sqlite3*")
        return repr(rows) + "".join(p.read_bytes().decode("latin-1") for p in files)
    import boto3

    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=basic.server.moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return repr(dynamodb.scan(TableName="chroma-catalog")["Items"])


def test_passwords_are_stored_only_as_salted_scrypt_hashes(basic: BasicServer) -> None:
    stored = stored_catalog(basic)
    hashes = dict(re.findall(r"(rita|walt|ada).{0,80}?(scrypt\$[0-9$]+[^'\"\s]+)", stored))
    assert set(hashes) == {"rita", "walt", "ada"}
    for user, password in basic.passwords.items():
        assert password not in stored
        assert password.encode() not in stored.encode("latin-1", "replace")
        if user in hashes:
            assert verify_password(password, hashes[user])
            assert not verify_password(password + "x", hashes[user])
    assert len(set(hashes.values())) == 3


def test_users_cli_lists_scopes_and_refuses_bad_input(basic: BasicServer) -> None:
    listing = basic.users_cli("list")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["ada", "rita", "walt"]
    assert "role reader tenant acme databases main" in lines[1]
    assert "scrypt" not in listing.stdout
    scope = ("--tenant", "acme", "--databases", "main", "--role", "reader")
    refusals = {
        "already exists": basic.users_cli("create", "--user", "rita", *scope),
        "at least 8 characters": basic.users_cli(
            "create", "--user", "shorty", *scope, "--password-stdin", stdin="short\n"
        ),
        "without spaces or ':'": basic.users_cli("create", "--user", "a:b", *scope),
        "does not exist": basic.users_cli("revoke", "nobody"),
    }
    for message, done in refusals.items():
        assert done.returncode == 1 and message in done.stderr, (message, done.stderr)
    assert [line.split()[0] for line in basic.users_cli("list").stdout.splitlines()] == [
        "ada",
        "rita",
        "walt",
    ]


def test_users_cli_prompts_twice_for_a_chosen_password(basic: BasicServer) -> None:
    scope = ("--tenant", "acme", "--databases", "main", "--role", "reader")
    differ = basic.users_cli("create", "--user", "pat", *scope, "--prompt", stdin="one-pass\nx\n")
    assert differ.returncode != 0 and "differ" in differ.stderr
    same = basic.users_cli("create", "--user", "pat", *scope, "--prompt", stdin="pat-pass\n" * 2)
    assert same.returncode == 0, same.stderr
    assert "pat-pass" not in same.stdout
    basic.passwords["pat"] = "pat-pass"
    with httpx.Client(base_url=basic.server.url) as http:
        identity = http.get(f"{API}/auth/identity", headers=basic.basic("pat"))
    assert identity.json()["user_id"] == "pat"
    assert basic.users_cli("revoke", "pat").returncode == 0


def test_passwords_never_reach_the_log_or_later_cli_output(basic: BasicServer) -> None:
    log = basic.server.log.read_text()
    # Each generated password was printed once, by its own create; nothing else shows any.
    later = [out for out in basic.outputs if "password (shown once" not in out]
    for password in basic.passwords.values():
        assert password not in log
        assert all(password not in out for out in later)
