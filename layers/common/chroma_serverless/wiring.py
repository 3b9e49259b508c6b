"""The composition root: the stores, the maintainer and the service a process runs, built from
its :class:`~chroma_serverless.settings.Settings`. The only reader of ``settings.mode``; no web
framework here (the HTTP app, the CLI and the Lambda functions all start from this)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chroma_serverless.auth.access import ensure_admin_token
from chroma_serverless.errors import NotFoundError
from chroma_serverless.observe.tracing import traced
from chroma_serverless.service.service import Service
from chroma_serverless.types import PLANES

if TYPE_CHECKING:
    from collections.abc import Collection

    from chroma_serverless.ports import Catalog, Credentials, Log, Maintainer, RecordStore
    from chroma_serverless.settings import Settings
    from chroma_serverless.types import Plane


@dataclass(frozen=True)
class Parts:
    """What a process serves with: the use cases, and the credentials auth checks."""

    service: Service
    credentials: Credentials


@dataclass(frozen=True)
class _Stores:
    catalog: Catalog
    records: RecordStore


def build(settings: Settings, planes: Collection[Plane] = PLANES) -> Parts:
    """The parts for ``settings``. A process serving only the control plane never opens the
    record store, so its Lambda function needs neither LanceDB nor pyarrow. Stores are traced
    from the first invocation on (X-Ray discards subsegments made during Lambda's INIT)."""
    catalog = traced(build_catalog(settings), "catalog")
    credentials = traced(build_credentials(settings), "credentials")
    admin_token = _admin_token(settings)
    if admin_token:
        ensure_admin_token(credentials, admin_token)
    if "data" not in planes:
        return Parts(Service(catalog, None, allow_reset=settings.allow_reset), credentials)
    records = traced(build_records(settings), "records")
    maintainer = build_maintainer(settings, _Stores(catalog, records))
    service = Service(catalog, records, maintainer, allow_reset=settings.allow_reset)
    return Parts(service, credentials)


def build_service(settings: Settings) -> Service:
    """Every plane's use cases, with the maintainer ``settings`` names (the CLI, the
    maintenance function)."""
    return build(settings).service


def build_catalog(settings: Settings) -> Catalog:
    if settings.mode == "aws":
        from chroma_serverless.catalog.dynamodb.catalog import DynamoDbCatalog
        from chroma_serverless.catalog.dynamodb.table import client

        return DynamoDbCatalog(client(settings), settings.catalog_table)
    from chroma_serverless.catalog.sqlite.catalog import SqliteCatalog

    settings.path.mkdir(parents=True, exist_ok=True)
    return SqliteCatalog(settings.catalog_path)


def build_credentials(settings: Settings) -> Credentials:
    if settings.mode == "aws":
        from chroma_serverless.catalog.dynamodb.credentials import DynamoDbCredentials
        from chroma_serverless.catalog.dynamodb.table import client

        return DynamoDbCredentials(client(settings), settings.catalog_table)
    from chroma_serverless.catalog.sqlite.credentials import SqliteCredentials

    settings.path.mkdir(parents=True, exist_ok=True)
    return SqliteCredentials(settings.catalog_path)


def build_records(settings: Settings) -> RecordStore:
    from chroma_serverless.records.store import LanceRecordStore

    return LanceRecordStore(
        settings.records_root, settings.storage_options(), settings.index, build_log(settings)
    )


def build_log(settings: Settings) -> Log:
    """The write log in front of the records: items of the catalog's DynamoDB table (entries
    too large for an item in the records bucket, under ``<records prefix>/_log``), or a SQLite
    file beside the embedded catalog."""
    if settings.mode == "aws":
        import boto3

        from chroma_serverless.catalog.dynamodb.log import DynamoDbLog
        from chroma_serverless.catalog.dynamodb.table import client

        bucket, _, prefix = settings.records_root.removeprefix("s3://").partition("/")
        s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint, region_name=settings.aws_region)
        log_prefix = f"{prefix.rstrip('/')}/_log" if prefix else "_log"
        return DynamoDbLog(client(settings), settings.catalog_table, s3, bucket, log_prefix)
    from chroma_serverless.catalog.sqlite.log import SqliteLog

    settings.path.mkdir(parents=True, exist_ok=True)
    return SqliteLog(settings.path / "log.sqlite3")


def build_maintainer(settings: Settings, stores: _Stores) -> Maintainer:
    from chroma_serverless.service import maintenance

    if settings.maintenance == "background":
        return maintenance.BackgroundMaintainer(stores)
    if settings.maintenance == "queue":
        import boto3

        assert settings.maintenance_queue_url, "maintenance=queue needs a queue URL"
        sqs = boto3.client(
            "sqs", endpoint_url=settings.aws_endpoint, region_name=settings.aws_region
        )
        return maintenance.SqsMaintainer(sqs, settings.maintenance_queue_url)
    return maintenance.NoMaintenance()


def existing_data(settings: Settings) -> None:
    """Refuse an embedded data directory that is not there: a command that manages a server's
    data (tokens, users, maintenance) must not create an empty one beside it."""
    if settings.mode == "embedded" and not settings.path.is_dir():
        raise NotFoundError(
            f"No data directory at {settings.path}: pass --path DIR, the directory a server "
            "runs on (chroma-serverless run --path DIR)"
        )


def storage(settings: Settings) -> str:
    """Where the data lives, in words (the server's start-up line)."""
    if settings.mode == "aws":
        where = f"DynamoDB {settings.catalog_table} and {settings.records_root}"
        return where + (f" on moto at {settings.aws_endpoint}" if settings.aws_endpoint else "")
    return str(settings.path.resolve())


def identity(settings: Settings) -> str:
    """Names the deployment (import checkpoints are kept per identity)."""
    if settings.mode == "aws":
        return f"aws:{settings.catalog_table}:{settings.records_root}"
    return f"embedded:{settings.path.resolve()}"


def _admin_token(settings: Settings) -> str | None:
    if settings.admin_token_secret:
        from chroma_serverless.auth.secrets import read_secret

        return read_secret(settings, settings.admin_token_secret)
    return settings.admin_token
