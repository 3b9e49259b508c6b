"""Point-in-time restore of one collection's records: to an earlier version kept within the
retention window, in place (itself a new version, so it can be undone the same way) or as a new
collection, a fork of that version (copy-on-write, as :mod:`chroma_serverless.service.forks`).

Only records are versioned: a collection's name, metadata and configuration live in the catalog
and an in-place restore leaves them as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chroma_serverless.errors import InvalidArgumentError, NotFoundError
from chroma_serverless.service import forks
from chroma_serverless.types import Restored

if TYPE_CHECKING:
    from chroma_serverless.ports import Maintainer, Stores
    from chroma_serverless.types import Collection, RestorePoint


def restore(
    stores: Stores,
    maintainer: Maintainer,
    collection: Collection,
    to: str,
    new_name: str | None = None,
) -> Restored:
    """Restore ``collection`` to the version ``to`` names (:func:`point_at`)."""
    points = stores.records.restore_points(collection)
    point = point_at(collection, points, to)
    if new_name is None:
        stores.records.restore(collection, point.version)
        maintainer.touch(collection.id)
        return Restored(collection, point, points[-1].version)
    fork = forks.fork(stores.catalog, stores.records, collection, new_name, point.version)
    return Restored(fork, point, None)


def point_at(collection: Collection, points: list[RestorePoint], to: str) -> RestorePoint:
    """The version ``to`` names: a version number, or an ISO-8601 time (UTC unless it has an
    offset), which names the latest version committed at or before it."""
    if not points:
        raise NotFoundError(f"Collection [{collection.name}] has no stored records to restore")
    kept = f"kept: versions {points[0].version}-{points[-1].version} since {_time(points[0])}"
    if to.strip().isdigit():
        found = [p for p in points if p.version == int(to)]
        if not found:
            raise NotFoundError(
                f"Version {to} of collection [{collection.name}] is not kept ({kept})"
            )
        return found[0]
    try:
        moment = datetime.fromisoformat(to.strip())
    except ValueError:
        raise InvalidArgumentError(
            f"Expected a version number or an ISO-8601 time, got {to!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    before = [p for p in points if p.timestamp <= moment]
    if not before:
        raise NotFoundError(
            f"Collection [{collection.name}] has no version kept from {moment.isoformat()} ({kept})"
        )
    return before[-1]


def _time(point: RestorePoint) -> str:
    return point.timestamp.isoformat(timespec="microseconds")
