"""template.yaml and the app cannot drift: every route is served by exactly one function, the one
whose plane serves it, and a real API Gateway event for it reaches that function's handler."""

from __future__ import annotations

import contextlib
import io
import json
import re
import uuid
from typing import TYPE_CHECKING, Any, cast

import pytest
from fastapi.routing import APIRoute
from infra.local_api import load_template

from chroma_serverless.catalog.dynamodb.keys import ATTRIBUTES, KEY_SCHEMA
from chroma_serverless.http.routes import control_routers, data_routers
from chroma_serverless.service.service import Service
from chroma_serverless.settings import Settings
from tests.support.lambda_events import FakeLambdaContext, load_event, load_function
from tests.support.moto import new_catalog_table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import ModuleType

    from tests.support.moto import Moto

FUNCTION_PLANES = {"ControlFunction": "control", "DataFunction": "data"}
CATCH_ALL = "/{proxy+}"
ADMIN_TOKEN = "csk-template-test-admin"


def shape(path: str) -> str:
    """Path with every parameter as ``{}``: API Gateway needs one name per sibling level."""
    return re.sub(r"\{[^}]*\}", "{}", path.replace("{path:path}", "{proxy+}"))


def template_events() -> list[tuple[str, str, str, str]]:
    """(function, event name, method, path) for every API event in the template."""
    resources = load_template()["Resources"]
    return [
        (function, name, event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for function in FUNCTION_PLANES
        for name, event in resources[function]["Properties"]["Events"].items()
        if event["Type"] == "Api"
    ]


def app_routes() -> dict[tuple[str, str], str]:
    """(method, path shape) -> plane, for every route of the full app."""
    routes: dict[tuple[str, str], str] = {}
    service = Service(None, None)  # type: ignore[arg-type]
    for plane, routers in (("control", control_routers), ("data", data_routers)):
        for router in routers(service, Settings(), APIRoute):
            for route in router.routes:
                if isinstance(route, APIRoute) and route.include_in_schema:
                    assert route.methods is not None
                    for method in route.methods:
                        routes[(method, shape(route.path))] = plane
    return routes


def test_every_route_is_served_by_exactly_one_function_of_its_plane() -> None:
    served: dict[tuple[str, str], list[str]] = {}
    for function, _, method, path in template_events():
        if path != CATCH_ALL and not path.startswith("/api/v1/"):
            served.setdefault((method, shape(path)), []).append(function)
    routes = app_routes()
    assert set(served) == set(routes)
    for route, functions in served.items():
        assert len(functions) == 1, (route, functions)
        assert FUNCTION_PLANES[functions[0]] == routes[route], route


def test_unknown_paths_and_v1_reach_the_app() -> None:
    events = {(f, m, p) for f, _, m, p in template_events()}
    assert ("ControlFunction", "ANY", CATCH_ALL) in events
    assert ("ControlFunction", "ANY", "/api/v1/{proxy+}") in events


def test_catalog_table_key_schema_matches_the_code() -> None:
    table = load_template()["Resources"]["CatalogTable"]["Properties"]
    assert table["KeySchema"] == KEY_SCHEMA
    assert table["AttributeDefinitions"] == ATTRIBUTES
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


# ------------------------------------------------------------------ events through the handlers


@pytest.fixture(scope="module")
def handlers(moto: Moto, bucket: str) -> Iterator[dict[str, ModuleType]]:
    """Both entry points in AWS mode (DynamoDB, S3 and Secrets Manager on moto) with auth on and
    the admin token bootstrapped from a secret, as the template configures them."""
    secret = moto.client("secretsmanager").create_secret(
        Name=f"admin-{uuid.uuid4().hex[:8]}", SecretString=ADMIN_TOKEN
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHROMA_SERVERLESS_AUTH", "true")
        env.setenv("CHROMA_SERVERLESS_ADMIN_TOKEN_SECRET", secret["ARN"])
        env.setenv("CHROMA_SERVERLESS_MODE", "aws")
        env.setenv("CHROMA_SERVERLESS_CATALOG_TABLE", new_catalog_table(moto))
        env.setenv("CHROMA_SERVERLESS_RECORDS_URI", f"s3://{bucket}/{uuid.uuid4().hex}")
        env.setenv("CHROMA_SERVERLESS_AWS_ENDPOINT", moto.endpoint)
        env.setenv("CHROMA_SERVERLESS_ALLOW_RESET", "true")
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        yield {"ControlFunction": load_function("control"), "DataFunction": load_function("data")}


def call(handler: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = handler(load_event("rest", method, path, body, headers), FakeLambdaContext())
    assert response["headers"]["content-type"] == "application/json"
    payload = json.loads(response["body"])
    if response["statusCode"] >= 400:
        assert set(payload) == {"error", "message"}, payload
        assert "chroma-trace-id" in response["headers"]
    return response["statusCode"], payload


BODIES: dict[str, Any] = {
    "CreateTenant": {"name": "t-{uuid}"},
    "CreateDatabase": {"name": "d-{uuid}"},
    "CreateCollection": {"name": "c-{uuid}"},
    "ModifyCollection": {"new_metadata": {"edited": True}},
    "ForkCollection": {"new_name": "fork-{uuid}"},
    "Add": {"ids": ["new"], "embeddings": [[0.0, 1.0]]},
    "Upsert": {"ids": ["r1"], "embeddings": [[0.5, 0.5]]},
    "Update": {"ids": ["r1"], "metadatas": [{"k": 2}]},
    "Get": {"where": {"k": 1}},
    "Query": {"query_embeddings": [[1.0, 0.0]], "n_results": 1},
    "Delete": {"ids": ["r1"]},
    "Search": {
        "searches": [{"rank": {"$knn": {"query": [1.0, 0.0]}}, "select": {"keys": ["#score"]}}]
    },
    "RestoreCollection": {"to": "2100-01-01T00:00:00"},
}
STATUS = {"Add": 201, "V1": 410, "Unknown": 404}


@pytest.mark.parametrize(
    ("function", "name", "method", "path"),
    template_events(),
    ids=[f"{f}.{n}" for f, n, _, _ in template_events()],
)
def test_event_reaches_the_assigned_function(
    handlers: dict[str, ModuleType], function: str, name: str, method: str, path: str
) -> None:
    control, data = handlers["ControlFunction"].handler, handlers["DataFunction"].handler
    tag = uuid.uuid4().hex[:8]
    database = "default_database"
    if name == "DeleteDatabase":
        database = f"doomed-{tag}"
        assert (
            call(control, "POST", "/api/v2/tenants/default_tenant/databases", {"name": database})[0]
            == 200
        )
    base = f"/api/v2/tenants/default_tenant/databases/{database}"
    status, collection = call(control, "POST", f"{base}/collections", {"name": f"col-{tag}"})
    assert status == 200
    status, _ = call(
        data,
        "POST",
        f"{base}/collections/{collection['id']}/add",
        {"ids": ["r1"], "embeddings": [[1.0, 0.0]], "metadatas": [{"k": 1}]},
    )
    assert status == 201

    by_name = method in ("GET", "DELETE") and path.endswith("collections/{collection}")
    concrete = (
        path.replace("{tenant}", "default_tenant")
        .replace("{database}", database)
        .replace("{collection}", collection["name"] if by_name else collection["id"])
        .replace("{proxy+}", "no/such/route")
        .replace("ANY", "GET")
    )
    body = json.loads(json.dumps(BODIES.get(name)).replace("{uuid}", tag))
    status, payload = call(
        handlers[function].handler, "GET" if method == "ANY" else method, concrete, body
    )
    assert status == STATUS.get(name, 200), payload
    if status == 404:
        assert payload["message"].startswith("No route for")


def test_the_stack_requires_a_token(handlers: dict[str, ModuleType]) -> None:
    path = "/api/v2/tenants/default_tenant/databases/default_database/collections"
    for function in ("ControlFunction",):
        event = load_event("rest", "GET", path)
        response = handlers[function].handler(event, FakeLambdaContext())
        assert response["statusCode"] == 401
        assert json.loads(response["body"])["error"] == "AuthorizationError"
    heartbeat = load_event("rest", "GET", "/api/v2/heartbeat")
    assert handlers["ControlFunction"].handler(heartbeat, FakeLambdaContext())["statusCode"] == 200


# ------------------------------------------------------------------ alarms and dashboard

ALARM_TOPIC = ["HasAlarmTopic", ["AlarmTopicArn"], "AWS::NoValue"]
# The AWS metrics the alarms may watch, and the template resource each dimension names.
AWS_METRICS = {
    ("AWS/ApiGateway", "5XXError"): {"ApiName": "AWS::StackName", "Stage": "Stage"},
    ("AWS/Lambda", "Errors"): {"FunctionName": "<function>"},
    ("AWS/Lambda", "Throttles"): {"FunctionName": "<function>"},
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): {
        "QueueName": "MaintenanceDeadLetters.QueueName"
    },
}
SEARCH = re.compile(r"SEARCH\('\{(\w+),([\w,]+)\} MetricName=\"(\w+)\"")


def alarms() -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def functions() -> set[str]:
    return {
        name
        for name, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory, built_model: Path) -> set[tuple[str, Any]]:
    """(metric, dimensions) of every EMF document the code really wrote, as a Lambda function
    writes them: requests through Mangum (the first a cold start), server-side embedding, a
    query, and a maintenance run that succeeds and one that fails."""
    from mangum import Mangum

    from chroma_serverless.http.app import build_app
    from chroma_serverless.observe import setup
    from chroma_serverless.service.maintenance import maintain
    from tests.support.observe import Output, dimensions, metric_names

    settings = Settings(path=tmp_path_factory.mktemp("emitted"), log_format="json")
    setup.configure(settings)
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), pytest.MonkeyPatch.context() as patch:
            app = build_app(settings)
            handler = Mangum(app, lifespan="off")

            def call(path: str, body: Any) -> Any:
                event = load_event("rest", "POST", path, body)
                reply = handler(event, cast("Any", FakeLambdaContext()))
                assert reply["statusCode"] < 300, reply
                return json.loads(reply["body"])

            base = "/api/v2/tenants/default_tenant/databases/default_database/collections"
            collection = call(base, {"name": "emitted"})["id"]
            call(f"{base}/{collection}/add", {"ids": ["a"], "documents": ["server embeds"]})
            call(f"{base}/{collection}/query", {"query_texts": ["embeds"], "n_results": 1})
            service: Service = app.state.service
            maintain(service, collection)

            def failing(target: object, growing: bool = False) -> dict[str, Any]:
                raise RuntimeError("disk full")

            patch.setattr(service.records, "maintain", failing)
            with pytest.raises(RuntimeError):
                maintain(service, collection)
    finally:
        setup.configure(Settings())
    return {
        (name, frozenset(dimension_set.items()))
        for document in Output.parse(stdout.getvalue()).documents
        for name in metric_names(document)
        for dimension_set in dimensions(document)
    }


def test_every_metric_the_code_names_is_really_emitted(emitted: set[tuple[str, Any]]) -> None:
    from chroma_serverless.observe.metrics import METRICS

    assert {name for name, _ in emitted} == set(METRICS)


def test_each_alarm_watches_a_metric_the_code_emits(emitted: set[tuple[str, Any]]) -> None:
    """An alarm on a metric (or dimensions) the code never writes would never fire."""
    from chroma_serverless.observe.metrics import NAMESPACE

    for name, alarm in alarms().items():
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        if alarm["Namespace"] == NAMESPACE:
            assert (alarm["MetricName"], frozenset(dimensions.items())) in emitted, name
            continue
        expected = AWS_METRICS[(alarm["Namespace"], alarm["MetricName"])]
        assert set(dimensions) == set(expected), name
        for dimension, value in dimensions.items():
            if expected[dimension] == "<function>":
                assert value in functions(), name
            else:
                assert value == expected[dimension], name


def test_the_alarms_cover_the_api_every_function_and_maintenance() -> None:
    watched = {
        (alarm["MetricName"], next(iter(d["Value"] for d in alarm["Dimensions"])))
        for alarm in alarms().values()
    }
    for function in functions():
        assert {("Errors", function), ("Throttles", function)} <= watched
    assert ("5XXError", "AWS::StackName") in watched
    assert ("ApproximateNumberOfMessagesVisible", "MaintenanceDeadLetters.QueueName") in watched
    assert ("MaintenanceFailures", "chroma-serverless") in watched
    (latency,) = [a for a in alarms().values() if a["MetricName"] == "Latency"]
    assert latency["ExtendedStatistic"] == "p99"
    routes = {d["Value"] for d in latency["Dimensions"] if d["Name"] == "route"}
    assert routes == {
        "POST /api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/query"
    }


def test_every_alarm_notifies_the_optional_topic() -> None:
    template = load_template()
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == [["AlarmTopicArn", ""]]
    for name, alarm in alarms().items():
        assert alarm["AlarmActions"] == alarm["OKActions"] == ALARM_TOPIC, name
        assert alarm["TreatMissingData"] == "notBreaching", name


def test_the_dashboard_shows_every_metric_and_alarm(emitted: set[tuple[str, Any]]) -> None:
    from chroma_serverless.observe.metrics import METRICS, NAMESPACE

    body = load_template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    widgets = json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))["widgets"]
    shown: set[str] = set()
    for widget in widgets:
        if widget["type"] == "alarm":
            assert {a.removesuffix(".Arn") for a in widget["properties"]["alarms"]} == set(alarms())
            continue
        previous: list[Any] = []
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):  # a SEARCH: every value of the dimensions it names
                found = SEARCH.search(row[0]["expression"])
                assert found, row
                namespace, names, metric = found.groups()
                if namespace == NAMESPACE:
                    shown.add(metric)
                    sets = {frozenset(k for k, _ in dims) for m, dims in emitted if m == metric}
                    assert frozenset(names.split(",")) in sets, row
                continue
            if row[0] == "...":  # the metric above again, for another dimension value
                continue
            row = [previous[i] if value == "." else value for i, value in enumerate(row)]
            previous = row
            if row[0] == NAMESPACE:
                shown.add(row[1])
                fields = [value for value in row[2:] if isinstance(value, str)]
                dims = dict(zip(fields[::2], fields[1::2], strict=True))
                assert (row[1], frozenset(dims.items())) in emitted, row
    assert shown == set(METRICS)
