"""Every response shape of the v2 API, both ways: written by the routes, read back by the
``--url`` client of the transfer commands and by the export manifest."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from chroma_serverless.domain import sparse_vectors
from chroma_serverless.domain.schema import indexes
from chroma_serverless.types import Collection, Restored, RestorePoint, SparseVector

if TYPE_CHECKING:
    from collections.abc import Sequence

    from chroma_serverless.search.model import Found
    from chroma_serverless.types import Database, GetResult, QueryResult


def json_default(value: object) -> Any:
    """orjson's fallback: the values it cannot write itself (sparse vectors)."""
    if isinstance(value, SparseVector):
        return sparse_vectors.to_wire(value)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def database(found: Database) -> dict[str, str]:
    return {"id": found.id, "name": found.name, "tenant": found.tenant}


def collection(found: Collection) -> dict[str, Any]:
    return {
        "id": found.id,
        "name": found.name,
        "tenant": found.tenant,
        "database": found.database,
        "metadata": found.metadata,
        "configuration_json": found.configuration,
        # Collections stored before schemas were kept get theirs from the configuration.
        "schema": found.schema or indexes.from_configuration(found.configuration),
        "dimension": found.dimension,
        "log_position": 0,
        "version": 0,
    }


def collection_from(data: dict[str, Any]) -> Collection:
    """A Collection JSON as :func:`collection` writes it (what a client of the API reads)."""
    return Collection(
        id=data["id"],
        name=data["name"],
        tenant=data["tenant"],
        database=data["database"],
        metadata=data.get("metadata"),
        configuration=data.get("configuration_json") or {},
        dimension=data.get("dimension"),
        schema=data.get("schema"),
    )


def get_result(result: GetResult, include: Sequence[str]) -> dict[str, Any]:
    return {
        "ids": result.ids,
        "embeddings": result.embeddings,
        "documents": result.documents,
        "uris": result.uris,
        "metadatas": result.metadatas,
        "include": include,
    }


def query_result(result: QueryResult, include: Sequence[str]) -> dict[str, Any]:
    return {
        "ids": result.ids,
        "distances": result.distances,
        "embeddings": result.embeddings,
        "documents": result.documents,
        "uris": result.uris,
        "metadatas": result.metadatas,
        "include": include,
    }


def search_results(found: list[Found]) -> dict[str, Any]:
    """The Search API's response: one entry per search in each column, ``null`` for a column
    the search did not select."""
    return {
        "ids": [f.ids for f in found],
        "documents": [f.documents for f in found],
        "embeddings": [f.embeddings for f in found],
        "metadatas": [f.metadatas for f in found],
        "scores": [f.scores for f in found],
        "select": [list(f.select) for f in found],
    }


def indexing_status(indexed: int, unindexed: int) -> dict[str, Any]:
    total = indexed + unindexed
    return {
        "num_indexed_ops": indexed,
        "num_unindexed_ops": unindexed,
        "total_ops": total,
        "op_indexing_progress": indexed / total if total else 1.0,
    }


def restore_point(point: RestorePoint) -> dict[str, Any]:
    return {
        "version": point.version,
        "timestamp": _time(point),
        "records": point.records,
        "made_by": point.made_by,
    }


def restore_point_from(data: dict[str, Any]) -> RestorePoint:
    moment = datetime.fromisoformat(data["timestamp"])
    return RestorePoint(int(data["version"]), moment, int(data["records"]), data.get("made_by"))


def _time(point: RestorePoint) -> str:
    return point.timestamp.isoformat(timespec="microseconds")


def restored(done: Restored) -> dict[str, Any]:
    return {
        "collection": collection(done.collection),
        "restored": restore_point(done.source),
        "previous": done.previous,
    }


def restored_from(data: dict[str, Any]) -> Restored:
    point = restore_point_from(data["restored"])
    return Restored(collection_from(data["collection"]), point, data["previous"])
