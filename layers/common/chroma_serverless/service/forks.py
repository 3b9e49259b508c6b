"""Forks: a new collection with its source's records at fork time, copy-on-write, and the
release of storage that forks share once nothing needs it.

The catalog records the lineage in the write that creates the fork, before the record store
clones the source's table (a catalog entry always precedes its records, which the maintenance
sweep relies on). A deleted collection's storage is released only when no collection forked
from it, directly or not, still exists (:mod:`chroma_serverless.domain.lineage`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from typing import TYPE_CHECKING, Literal

from chroma_serverless.domain import checks
from chroma_serverless.errors import NotFoundError

if TYPE_CHECKING:
    from chroma_serverless.ports import Catalog, RecordStore
    from chroma_serverless.types import Collection

log = logging.getLogger("chroma_serverless.forks")

Release = Literal["dropped", "pending", "held"]


def fork(
    catalog: Catalog,
    records: RecordStore,
    source: Collection,
    new_name: str,
    version: int | None = None,
) -> Collection:
    """A new collection named ``new_name`` beside ``source``, with its configuration, schema,
    metadata and records as they are now (or were at ``version``: a restore as a new
    collection); later writes to either stay on that side."""
    new = dataclasses.replace(source, id=str(uuid.uuid4()), name=checks.collection_name(new_name))
    stored = catalog.fork_collection(new, source.id)
    try:
        dimension = records.fork(source, stored.id, version)
    except Exception:
        with contextlib.suppress(NotFoundError):
            catalog.delete_collection(stored.tenant, stored.database, stored.name)
        release(catalog, records, stored.id)
        raise
    if dimension is not None and stored.dimension is None:  # the source's first add raced us
        stored = dataclasses.replace(stored, dimension=catalog.set_dimension(stored.id, dimension))
    return stored


def fork_count(catalog: Catalog, collection: Collection) -> int:
    """Forks ever made in ``collection``'s lineage, deleted ones included (as Chroma counts)."""
    lineage = catalog.lineage(collection.id)
    return 0 if lineage is None else lineage.fork_count


def release(catalog: Catalog, records: RecordStore, collection_id: str) -> Release:
    """Let go of the storage of a collection whose catalog entry is gone: its records are
    dropped unless a fork still needs them, and so are those of deleted ancestors nothing needs
    any more; the nearest ancestor still needed unpins what they shared.

    Returns ``held`` if a fork still needs the records, ``pending`` if some files could not be
    removed yet (left for the maintenance sweep), else ``dropped``.
    """
    lineage = catalog.lineage(collection_id)
    released = [collection_id] if lineage is None else lineage.releasable(collection_id)
    if not released:
        return "held"
    outcome: Release = "dropped"
    for released_id in released:
        if not records.drop(released_id):
            log.warning("records of deleted collection %s remain for the sweep", released_id)
            outcome = "pending"
    if lineage is None:
        return outcome
    parent = lineage.parents.get(released[-1])
    if parent is not None:
        records.unpin(parent, released[-1])
    else:  # the root: the whole tree is gone
        catalog.forget_lineage(lineage.root)
    return outcome


def retained(catalog: Catalog) -> set[str]:
    """Ids of deleted collections whose records are kept because forks still need them."""
    return {
        held
        for lineage in catalog.lineages()
        for held in lineage.held()
        if held not in lineage.live
    }
