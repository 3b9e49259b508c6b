"""The Lambda entry points, driven by API Gateway REST (v1) and HTTP API (v2) events.

Route logic is covered in-process elsewhere; these tests cover the edge: Mangum's mapping of each
payload format (stage prefix, base64 bodies, headers, query strings), the JSON responses it hands
back to API Gateway, and that the app is built once at import with lifespan off.
"""

from __future__ import annotations

import json
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

import chroma_serverless.http.app
from chroma_serverless import __version__
from tests.support.lambda_events import KINDS, FakeLambdaContext, Kind, load_event, load_function

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Iterator
    from types import ModuleType

    from fastapi import FastAPI

    from chroma_serverless.settings import Settings
    from chroma_serverless.types import Plane

API = "/api/v2"
DB = API + "/tenants/default_tenant/databases/default_database"
COLLECTION_PATH = DB + "/collections/{id}"
MAX_BATCH_SIZE = 777  # not the default, to show the entry points read the environment


@dataclass
class Functions:
    control: ModuleType
    data: ModuleType
    builds: dict[str, int]  # entry point -> build_app calls


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


@pytest.fixture(scope="module")
def functions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Functions]:
    """Both entry points, imported as Lambda would at INIT, over one storage directory."""
    builds = {"control": 0, "data": 0}
    importing: list[str] = []
    real_build_app = chroma_serverless.http.app.build_app

    def counting_build_app(settings: Settings, planes: Collection[Plane]) -> FastAPI:
        builds[importing[-1]] += 1
        return real_build_app(settings, planes)

    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHROMA_SERVERLESS_PATH", str(tmp_path_factory.mktemp("lambda")))
        env.setenv("CHROMA_SERVERLESS_ALLOW_RESET", "true")
        env.setenv("CHROMA_SERVERLESS_MAX_BATCH_SIZE", str(MAX_BATCH_SIZE))
        env.setattr(chroma_serverless.http.app, "build_app", counting_build_app)
        modules = {}
        for name in ("control", "data"):
            importing.append(name)
            modules[name] = load_function(name)
    yield Functions(modules["control"], modules["data"], builds)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


@pytest.fixture(autouse=True)
def fresh(functions: Functions) -> None:
    """Each test starts from an empty store, reset through the data function (it drops records)."""
    assert invoke(functions.data, "rest", "POST", API + "/reset").body is True


def invoke(
    function: ModuleType,
    kind: Kind,
    method: str,
    path: str,
    body: Any = None,
    **options: Any,
) -> Reply:
    """One invocation; checks what every JSON response through API Gateway must look like."""
    event = load_event(kind, method, path, body, **options)
    response = function.handler(event, FakeLambdaContext())
    assert response["isBase64Encoded"] is False, response
    headers = response["headers"]
    assert headers["content-type"] == "application/json", headers
    # The captured events ask for gzip; compression is API Gateway's job, never the app's.
    assert "content-encoding" not in headers
    if kind == "rest":
        assert response["multiValueHeaders"] == {}
    else:
        assert "multiValueHeaders" not in response
    status = response["statusCode"]
    reply = Reply(status, json.loads(response["body"]), headers)
    if status >= 400:
        assert set(reply.body) == {"error", "message"}, reply.body
        assert len(headers["chroma-trace-id"]) == 32
    return reply


def ping(function: ModuleType, kind: Kind) -> None:
    """A route each function serves: heartbeat (control), count of a missing collection (data)."""
    if function.handler.app.state.service._records is None:
        assert invoke(function, kind, "GET", API + "/heartbeat").status == 200
    else:
        missing = COLLECTION_PATH.format(id=uuid.uuid4()) + "/count"
        assert invoke(function, kind, "GET", missing).status == 404


def create_collection(functions: Functions, kind: Kind, name: str) -> dict[str, Any]:
    reply = invoke(functions.control, kind, "POST", DB + "/collections", {"name": name})
    assert reply.status == 200, reply.body
    collection: dict[str, Any] = reply.body
    return collection


# ---------------------------------------------------------------- system routes


@pytest.mark.parametrize("path", [API + "/heartbeat", API])
def test_heartbeat(functions: Functions, kind: Kind, path: str) -> None:
    reply = invoke(functions.control, kind, "GET", path)
    assert reply.status == 200
    assert list(reply.body) == ["nanosecond heartbeat"]
    assert isinstance(reply.body["nanosecond heartbeat"], int)


def test_version(functions: Functions, kind: Kind) -> None:
    reply = invoke(functions.control, kind, "GET", API + "/version")
    assert (reply.status, reply.body) == (200, __version__)


def test_pre_flight_checks_read_settings_from_the_environment(
    functions: Functions, kind: Kind
) -> None:
    reply = invoke(functions.control, kind, "GET", API + "/pre-flight-checks")
    assert reply.status == 200
    assert reply.body == {"max_batch_size": MAX_BATCH_SIZE, "supports_base64_encoding": True}


def test_identity(functions: Functions, kind: Kind) -> None:
    reply = invoke(functions.control, kind, "GET", API + "/auth/identity")
    assert reply.status == 200
    assert reply.body == {
        "user_id": "",
        "tenant": "default_tenant",
        "databases": ["default_database"],
    }


# ---------------------------------------------------------------- collections


def test_create_get_list_and_delete_collections(functions: Functions, kind: Kind) -> None:
    created = create_collection(functions, kind, "books")
    assert created["name"] == "books"
    assert (created["tenant"], created["database"]) == ("default_tenant", "default_database")

    got = invoke(functions.control, kind, "GET", DB + "/collections/books")
    assert (got.status, got.body) == (200, created)
    by_id = invoke(functions.control, kind, "GET", DB + "/collections/by-id/" + created["id"])
    assert (by_id.status, by_id.body) == (200, created)
    listed = invoke(functions.control, kind, "GET", DB + "/collections")
    assert (listed.status, listed.body) == (200, [created])
    counted = invoke(functions.control, kind, "GET", DB + "/collections_count")
    assert (counted.status, counted.body) == (200, 1)

    deleted = invoke(functions.data, kind, "DELETE", DB + "/collections/books")
    assert (deleted.status, deleted.body) == (200, {})
    gone = invoke(functions.control, kind, "GET", DB + "/collections/books")
    assert gone.status == 404
    assert gone.body["error"] == "NotFoundError"


def test_list_collections_limit_and_offset_from_the_query_string(
    functions: Functions, kind: Kind
) -> None:
    for name in ("ccc", "aaa", "ddd", "bbb"):
        create_collection(functions, kind, name)
    reply = invoke(
        functions.control, kind, "GET", DB + "/collections", query={"limit": "2", "offset": "1"}
    )
    assert reply.status == 200
    assert [c["name"] for c in reply.body] == ["bbb", "ccc"]


# ---------------------------------------------------------------- records


@pytest.mark.parametrize("base64_body", [False, True], ids=["plain", "base64"])
def test_record_round_trip(functions: Functions, kind: Kind, base64_body: bool) -> None:
    """The control function creates the collection; the data function works on its records."""
    collection = COLLECTION_PATH.format(id=create_collection(functions, kind, "notes")["id"])

    def call(method: str, route: str, body: Any = None) -> Reply:
        return invoke(
            functions.data, kind, method, collection + route, body, base64_body=base64_body
        )

    added = call(
        "POST",
        "/add",
        {
            "ids": ["a", "b", "c"],
            "embeddings": [[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]],
            "documents": ["apple", "banana", "cherry é"],
            "metadatas": [{"n": 1}, {"n": 2}, {"n": 3}],
        },
    )
    assert (added.status, added.body) == (201, {})
    assert call("GET", "/count").body == 3

    got = call("POST", "/get", {"ids": ["c", "a"], "include": ["documents", "embeddings"]})
    assert got.status == 200
    rows = zip(got.body["ids"], got.body["documents"], got.body["embeddings"], strict=True)
    assert sorted(rows) == [("a", "apple", [1.0, 0.0]), ("c", "cherry é", [0.7, 0.7])]
    where = call("POST", "/get", {"where": {"n": {"$gte": 2}}, "include": ["metadatas"]})
    assert sorted(where.body["ids"]) == ["b", "c"]

    queried = call(
        "POST",
        "/query",
        {"query_embeddings": [[0.0, 1.0]], "n_results": 2, "include": ["documents", "distances"]},
    )
    assert queried.status == 200
    assert queried.body["ids"] == [["b", "c"]]
    assert queried.body["documents"] == [["banana", "cherry é"]]
    assert queried.body["distances"][0][0] == pytest.approx(0.0)

    deleted = call("POST", "/delete", {"ids": ["a"]})
    assert (deleted.status, deleted.body) == (200, {"deleted": 1})
    assert call("GET", "/count").body == 2


# ---------------------------------------------------------------- errors


def test_missing_collection_is_a_chroma_not_found(functions: Functions, kind: Kind) -> None:
    by_name = invoke(functions.control, kind, "GET", DB + "/collections/nope")
    assert by_name.status == 404
    assert by_name.body["error"] == "NotFoundError"
    assert "nope" in by_name.body["message"]

    records = COLLECTION_PATH.format(id=uuid.uuid4()) + "/count"
    assert invoke(functions.data, kind, "GET", records).status == 404


def test_unknown_route_is_a_chroma_error_not_fastapi_detail(
    functions: Functions, kind: Kind
) -> None:
    reply = invoke(functions.control, kind, "GET", API + "/no/such/route")
    assert reply.status == 404
    assert reply.body == {
        "error": "NotFoundError",
        "message": f"No route for GET {API}/no/such/route",
    }


def test_wrong_method_is_a_chroma_error(functions: Functions, kind: Kind) -> None:
    reply = invoke(functions.control, kind, "DELETE", API + "/heartbeat")
    assert reply.status == 405
    assert reply.body["error"] == "ChromaError"


def test_internal_error_is_chroma_json_not_mangums_plain_text(
    functions: Functions, kind: Kind, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starlette re-raises after sending the 500; Mangum must keep the response already sent."""

    def broken(*args: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(functions.control.app.state.service, "count_collections", broken)
    reply = invoke(functions.control, kind, "GET", DB + "/collections_count")
    assert reply.status == 500
    assert reply.body == {"error": "InternalError", "message": "Internal server error"}


@pytest.mark.parametrize("base64_body", [False, True], ids=["plain", "base64"])
def test_invalid_json_body_is_invalid_argument(
    functions: Functions, kind: Kind, base64_body: bool
) -> None:
    reply = invoke(
        functions.control,
        kind,
        "POST",
        DB + "/collections",
        '{"name": "broken",',
        headers={"Content-Type": "application/json"},
        base64_body=base64_body,
    )
    assert reply.status == 400
    assert reply.body["error"] == "InvalidArgumentError"
    assert reply.body["message"].startswith("Failed to parse the request body as JSON")


# ---------------------------------------------------------------- the API Gateway mapping


def test_rest_event_from_a_stage_routes_on_the_path_without_the_stage(
    functions: Functions,
) -> None:
    event = load_event("rest", "GET", API + "/heartbeat")
    assert event["requestContext"]["stage"] == "prod"
    assert event["requestContext"]["path"] == "/prod" + API + "/heartbeat"
    assert event["path"] == API + "/heartbeat"
    response = functions.control.handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200
    assert "nanosecond heartbeat" in json.loads(response["body"])


def test_events_keep_the_captured_shape(kind: Kind) -> None:
    """``load_event`` edits only the request fields: the rest stays as API Gateway sends it."""
    event = load_event(kind, "POST", API + "/reset", {"a": 1}, query={"x": "1"})
    if kind == "rest":
        assert event["resource"] == "/{proxy+}"
        assert (event["httpMethod"], event["path"]) == ("POST", API + "/reset")
        assert event["requestContext"]["httpMethod"] == "POST"
        assert event["multiValueQueryStringParameters"] == {"x": ["1"]}
        assert event["multiValueHeaders"]["Content-Type"] == ["application/json"]
    else:
        assert (event["version"], event["routeKey"]) == ("2.0", "$default")
        assert event["rawPath"] == event["requestContext"]["http"]["path"] == API + "/reset"
        assert event["requestContext"]["http"]["method"] == "POST"
        assert event["rawQueryString"] == "x=1"
        assert event["headers"]["content-type"] == "application/json"
    assert (event["body"], event["isBase64Encoded"]) == ('{"a": 1}', False)


# ---------------------------------------------------------------- cold start and lifespan


def test_app_is_built_once_per_module_and_reused(functions: Functions, kind: Kind) -> None:
    for function in (functions.control, functions.data):
        assert function.handler.app is function.app
    assert functions.control.app is not functions.data.app
    assert functions.builds == {"control": 1, "data": 1}

    apps = []
    for _ in range(2):
        for function in (functions.control, functions.data):
            ping(function, kind)
            apps.append(function.handler.app)
    assert apps == [functions.control.app, functions.data.app] * 2
    assert functions.builds == {"control": 1, "data": 1}


def test_lifespan_is_off(functions: Functions, kind: Kind, monkeypatch: pytest.MonkeyPatch) -> None:
    """No startup or shutdown runs around invocations: everything is built at import."""
    entered: list[str] = []

    @asynccontextmanager
    async def recording_lifespan(app: object) -> AsyncIterator[None]:
        entered.append("startup")
        yield
        entered.append("shutdown")

    for function in (functions.control, functions.data):
        assert function.handler.lifespan == "off"
        monkeypatch.setattr(function.app.router, "lifespan_context", recording_lifespan)
        ping(function, kind)
    assert entered == []
