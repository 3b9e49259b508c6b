"""The HTTP app in-process over a service's stores, with the credentials kept beside its catalog."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chroma_serverless.catalog.sqlite.catalog import SqliteCatalog
from chroma_serverless.catalog.sqlite.credentials import SqliteCredentials
from chroma_serverless.http.app import create_app
from chroma_serverless.service.service import Service
from chroma_serverless.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chroma_serverless.ports import Catalog, Credentials


def credentials_beside(catalog: Catalog) -> Credentials:
    """The credentials kept beside ``catalog`` (its SQLite file, its DynamoDB table)."""
    from chroma_serverless.catalog.dynamodb.catalog import DynamoDbCatalog
    from chroma_serverless.catalog.dynamodb.credentials import DynamoDbCredentials

    if isinstance(catalog, DynamoDbCatalog):
        return DynamoDbCredentials(catalog.client, catalog.name)
    assert isinstance(catalog, SqliteCatalog)
    return SqliteCredentials(catalog.path)


def app_of(service: Service, settings: Settings | None = None) -> FastAPI:
    """The HTTP app over ``service``'s stores as ``settings`` configure it (default: reset
    allowed), with the credentials kept beside its catalog."""
    settings = settings or Settings(allow_reset=True)
    configured = Service(
        service.catalog, service.records, service.maintainer, allow_reset=settings.allow_reset
    )
    return create_app(configured, settings, credentials_beside(service.catalog))
