"""What an operator reads: the JSON log lines and CloudWatch EMF documents each request and each
maintenance run writes, in-process and through the Lambda handlers with API Gateway events; the
``chroma-trace-id`` that leads from an error a client saw to its log lines; the X-Ray subsegments
on a real UDP socket standing in for the daemon; and never a credential, a document, a metadata
value or an embedding in any of it. The JSON-logging server driven by the official client is
``tests/e2e/test_observability.py``."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from fastapi.testclient import TestClient

from chroma_serverless.auth import access as auth
from chroma_serverless.observe import context, metrics, setup
from chroma_serverless.settings import Settings
from chroma_serverless.types import Collection, RecordBatch
from tests.support.app import app_of, credentials_beside
from tests.support.lambda_events import KINDS, FakeLambdaContext, Kind, load_event, load_function
from tests.support.observe import (
    DOCUMENT,
    EMBEDDING,
    METADATA_VALUE,
    PASSWORD,
    QUERY_ROUTE,
    RECORD_ROUTE,
    SERVICE_NAME,
    TOKEN,
    WRONG_PASSWORD,
    Output,
    assert_no_secret,
    bearer,
    dimensions,
    metric_names,
    request_dimensions,
)
from tests.support.paths import ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from chroma_serverless.service.service import Service

API = "/api/v2"
DB = API + "/tenants/default_tenant/databases/default_database"


def read(capsys: pytest.CaptureFixture[str]) -> Output:
    captured = capsys.readouterr()
    return Output.parse(captured.out, captured.err)


@pytest.fixture
def json_logs() -> Iterator[None]:
    """This process configured as the Lambda functions are (JSON logs and EMF on stdout);
    afterwards as a default process is (text on stderr, no metrics)."""
    setup.configure(Settings(log_format="json"))
    yield
    setup.configure(Settings())


# ------------------------------------------------------------------ in-process


@pytest.fixture
def app(service: Service, json_logs: None) -> Iterator[TestClient]:
    """The app with auth on: the bearer token ``TOKEN`` and the Basic user olga:``PASSWORD``."""
    credentials = credentials_beside(service.catalog)
    auth.ensure_admin_token(credentials, TOKEN)
    admin = auth.new_principal("olga", "*", ["*"], "admin")
    auth.add_basic_user(credentials, admin, PASSWORD)
    guarded = app_of(service, Settings(allow_reset=True, auth=True))
    with TestClient(guarded, raise_server_exceptions=False) as client:
        yield client


def basic(password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"olga:{password}".encode()).decode()}


def trace(response: Any) -> str:
    """The ``chroma-trace-id`` of a test client's response."""
    trace_id: str = response.headers["chroma-trace-id"]
    return trace_id


def test_each_request_writes_one_access_line_and_one_emf_document(
    app: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a collection
    created = app.post(f"{DB}/collections", json={"name": "observed"}, headers=bearer())
    collection = created.json()["id"]
    path = f"{DB}/collections/{collection}"
    capsys.readouterr()

    # WHEN records are added (Basic auth) and queried (bearer), and two requests fail
    added = app.post(
        f"{path}/add",
        json={
            "ids": ["a", "b"],
            "embeddings": [EMBEDDING, [0.5, 0.5]],
            "documents": [DOCUMENT, "plain"],
            "metadatas": [{"tag": METADATA_VALUE}, {"tag": "plain"}],
        },
        headers=basic(),
    )
    queried = app.post(
        f"{path}/query",
        json={
            "query_embeddings": [EMBEDDING],
            "n_results": 2,
            "where": {"tag": METADATA_VALUE},
            "where_document": {"$contains": DOCUMENT},
            "include": ["documents", "metadatas", "embeddings", "distances"],
        },
        headers=bearer(),
    )
    refused = app.get(f"{DB}/collections", headers=basic(WRONG_PASSWORD))
    unknown = app.get(f"{API}/no/such/{uuid.uuid4().hex}", headers=bearer())
    assert [r.status_code for r in (added, queried, refused, unknown)] == [201, 200, 401, 404]
    assert queried.json()["ids"] == [["a"]]
    out = read(capsys)

    # THEN each request wrote exactly one line and one document, tied by its chroma-trace-id
    responses = (added, queried, refused, unknown)
    assert len(out.logs) == len(out.documents) == len(responses)
    assert len({trace(r) for r in responses}) == len(responses)
    (line,), (document,) = out.of(trace(queried))
    assert line["level"] == "INFO"
    assert line["service"] == SERVICE_NAME
    assert line["message"].startswith(f"POST {path}/query 200 ")
    assert line["route"] == QUERY_ROUTE
    assert (line["tenant"], line["database"]) == ("default_tenant", "default_database")
    assert line["collection"] == collection
    assert line["status"] == 200
    assert isinstance(line["latency_ms"], float)
    assert dimensions(document) == request_dimensions(QUERY_ROUTE, "2xx")
    assert metric_names(document) == {"Requests", "Latency", "QueryTime", "RecordsReturned"}
    assert document["Requests"] == [1.0]
    assert document["RecordsReturned"] == [1.0]
    assert document["collection"] == collection  # metadata: searchable, never a dimension

    (line,), (document,) = out.of(trace(added))
    assert line["route"] == RECORD_ROUTE + "add"
    assert dimensions(document) == request_dimensions(RECORD_ROUTE + "add", "2xx")
    assert metric_names(document) == {"Requests", "Latency", "RecordsWritten"}
    assert document["RecordsWritten"] == [2.0]

    (line,), (document,) = out.of(trace(refused))
    assert line["status"] == 401
    list_route = "GET /api/v2/tenants/{tenant}/databases/{database}/collections"
    assert dimensions(document) == request_dimensions(list_route, "4xx")

    # an unknown path is no dimension: metrics stay few whatever clients send
    (line,), (document,) = out.of(trace(unknown))
    assert line["route"] == "unmatched"
    assert dimensions(document) == request_dimensions("unmatched", "4xx")
    assert_no_secret(out.text)


def test_an_internal_error_is_logged_under_the_trace_id_the_client_gets(
    app: TestClient,
    service: Service,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = app.post(f"{DB}/collections", json={"name": "broken"}, headers=bearer())
    collection = created.json()["id"]

    def broken(target: Collection) -> int:
        raise RuntimeError(filter_value)

    filter_value = "the disk is on fire"

    monkeypatch.setattr(service.records, "count", broken)
    capsys.readouterr()

    response = app.get(f"{DB}/collections/{collection}/count", headers=bearer())

    assert response.status_code == 500
    assert response.json()["error"] == "InternalError"
    lines, (document,) = read(capsys).of(trace(response))
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    (access,) = [line for line in lines if line["level"] == "INFO"]
    assert error["level"] == "ERROR"
    assert error["message"].startswith("internal error on GET")
    assert error["exception_name"] == "RuntimeError"
    assert "Traceback (most recent call last)" in error["message"]
    assert "in broken" in error["message"]  # the frame that raised
    assert filter_value not in error["message"]  # messages can quote user data
    assert error["collection"] == collection
    assert error["route"] == access["route"] == RECORD_ROUTE.replace("POST", "GET") + "count"
    assert access["status"] == 500
    assert dimensions(document) == request_dimensions(access["route"], "5xx")


def test_an_emf_document_is_the_one_powertools_writes(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = {"trace_id": "t1", "correlation_id": "c1", "collection": "c", "tenant": "acme"}
    values = [(metrics.REQUESTS, 1), (metrics.LATENCY, 5.5), (metrics.LATENCY, 2)]
    with context.unit(keys) as current:
        for name, value in values:
            metrics.count(name, value)
        metrics.emit(current, route="POST /r", status_class="2xx")
    (document,) = read(capsys).documents

    powertools = AmazonCloudWatchEMFProvider(namespace=metrics.NAMESPACE, service=SERVICE_NAME)
    for name, value in values:
        powertools.add_metric(name=name, unit=metrics.METRICS[name], value=value)
    powertools.add_dimension(name="route", value="POST /r")
    powertools.add_dimension(name="status_class", value="2xx")
    for key in ("trace_id", "correlation_id", "collection"):
        powertools.add_metadata(key=key, value=keys[key])
    # A TypedDict whose required Timestamp is dropped below: compared as the plain dict it is.
    expected = cast("dict[str, Any]", powertools.serialize_metric_set())
    document["_aws"].pop("Timestamp"), expected["_aws"].pop("Timestamp")
    assert json.dumps(document) == json.dumps(expected)  # the same keys in the same order


def test_text_logs_by_default_and_no_metrics(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.configure(Settings())
    with TestClient(app_of(service)) as client:
        response = client.get(f"{API}/heartbeat")
    out = capsys.readouterr()
    assert out.out == ""  # no EMF: metrics are JSON, written only with JSON logs
    (line,) = [line for line in out.err.splitlines() if "chroma_serverless.requests" in line]
    assert " INFO chroma_serverless.requests: GET /api/v2/heartbeat 200 " in line
    assert f"route=GET /api/v2/heartbeat trace_id={trace(response)}" in line


# ------------------------------------------------------------------ the Lambda functions


@pytest.fixture
def lambda_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The functions' environment as the template sets it (JSON logs, auth on), embedded."""
    monkeypatch.setenv("CHROMA_SERVERLESS_PATH", str(tmp_path))
    monkeypatch.setenv("CHROMA_SERVERLESS_LOG_FORMAT", "json")
    monkeypatch.setenv("CHROMA_SERVERLESS_AUTH", "true")
    monkeypatch.setenv("CHROMA_SERVERLESS_ADMIN_TOKEN", TOKEN)
    yield
    setup.configure(Settings())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.usefixtures("lambda_env")
def test_invocations_log_api_gateway_ids_and_one_cold_start(
    kind: Kind, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the control function just initialised (a cold start)
    control = load_function("control")
    capsys.readouterr()

    # WHEN API Gateway invokes it twice
    outputs, replies = [], []
    for _ in range(2):
        event = load_event(kind, "GET", f"{DB}/collections", headers=bearer())
        context = FakeLambdaContext()
        reply = control.handler(event, context)
        assert reply["statusCode"] == 200
        outputs.append(read(capsys))
        replies.append((event, context, reply))

    # THEN each line carries the invocation's ids; only the first counts a cold start
    for (event, context, reply), out, cold in zip(replies, outputs, (True, False), strict=True):
        (line,) = out.logs
        assert line["trace_id"] == reply["headers"]["chroma-trace-id"]
        assert line["correlation_id"] == event["requestContext"]["requestId"]
        assert line["function_request_id"] == context.aws_request_id
        assert line["function_name"] == context.function_name
        assert line["cold_start"] is cold
        assert line["route"] == "GET /api/v2/tenants/{tenant}/databases/{database}/collections"
        (request,) = out.with_metric("Requests")
        assert request["correlation_id"] == event["requestContext"]["requestId"]
        cold_starts = out.with_metric("ColdStart")
        assert len(cold_starts) == cold
        assert_no_secret(out.text)
    (cold_start,) = outputs[0].with_metric("ColdStart")
    assert cold_start["ColdStart"] == [1.0]
    function_name = replies[0][1].function_name
    assert dimensions(cold_start) == [{"function_name": function_name, "service": SERVICE_NAME}]


def fill(service: Service, name: str) -> Collection:
    collection = service.create_collection(
        "default_tenant", "default_database", name, None, None, False
    )
    embeddings = np.random.default_rng(0).random((8, 4), dtype=np.float32)
    service.add(collection, RecordBatch(ids=[str(i) for i in range(8)], embeddings=embeddings))
    return collection


def sqs_event(message_id: str, collection_id: str) -> dict[str, Any]:
    return {"Records": [{"messageId": message_id, "body": collection_id}]}


@pytest.mark.usefixtures("lambda_env")
def test_maintenance_runs_are_logged_and_counted_failures_included(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    function = load_function("maintenance")
    collection = fill(function.service, "maintained")
    capsys.readouterr()

    # a run that succeeds
    context = FakeLambdaContext()
    assert function.handler(sqs_event("m-1", collection.id), context) == {"batchItemFailures": []}
    out = read(capsys)
    (run,) = out.with_metric("MaintenanceRuns")
    assert dimensions(run) == [{"service": SERVICE_NAME}]
    assert (run["MaintenanceRuns"], run["MaintenanceFailures"]) == ([1.0], [0.0])
    assert run["MaintenanceDuration"][0] > 0
    assert run["collection"] == collection.id
    assert len(out.with_metric("ColdStart")) == 1
    (line,) = [line for line in out.logs if line["message"].startswith("maintained")]
    assert (line["collection"], line["function_request_id"]) == (
        collection.id,
        context.aws_request_id,
    )

    # a run that fails: reported to SQS for a retry, logged with its collection, counted
    def failing(target: Collection, growing: bool = False) -> dict[str, Any]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(function.service.records, "maintain", failing)
    failed = function.handler(sqs_event("m-2", collection.id), FakeLambdaContext())
    assert failed == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    out = read(capsys)
    (run,) = out.with_metric("MaintenanceRuns")
    assert run["MaintenanceFailures"] == [1.0]
    assert out.with_metric("ColdStart") == []
    (error,) = [line for line in out.logs if line["level"] == "ERROR"]
    assert error["message"] == f"maintenance of {collection.id} failed"
    assert error["collection"] == collection.id
    assert error["exception_name"] == "RuntimeError"


# ------------------------------------------------------------------ X-Ray


@pytest.mark.usefixtures("built_model")
def test_lambda_traces_catalog_records_and_embedding(tmp_path: Path) -> None:
    """The data function as Lambda runs it with active tracing: subsegments reach the daemon's
    address (a UDP socket here) for each catalog and record-store call and for embedding."""
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(2)
    root = f"1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"
    script = """
import json
from tests.support.lambda_events import FakeLambdaContext, load_event, load_function

control, data = load_function("control"), load_function("data")
db = "/api/v2/tenants/default_tenant/databases/default_database"

def call(function, path, body):
    reply = function.handler(load_event("rest", "POST", path, body), FakeLambdaContext())
    assert reply["statusCode"] < 300, reply
    return json.loads(reply["body"])

collection = call(control, db + "/collections", {"name": "traced"})
path = f"{db}/collections/{collection['id']}"
call(data, path + "/add", {"ids": ["a"], "documents": ["a traced document"]})
call(data, path + "/query", {"query_texts": ["traced"], "n_results": 1})
"""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "CHROMA_SERVERLESS_PATH": str(tmp_path),
        "CHROMA_SERVERLESS_LOG_FORMAT": "json",
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        "_X_AMZN_TRACE_ID": f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=1",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = set()
    try:
        while True:
            header, _, body = daemon.recv(65536).decode().partition("\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            subsegment = json.loads(body)
            assert subsegment["trace_id"] == root
            names.add(subsegment["name"])
    except TimeoutError:
        pass
    finally:
        daemon.close()
    assert {
        "## catalog.create_collection",
        "## catalog.get_collection_by_id",
        "## catalog.set_dimension",
        "## records.add",
        "## records.query",
        "## embed",
    } <= names
