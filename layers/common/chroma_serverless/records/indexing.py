"""Indexes and upkeep of one collection's table: the vector index past the threshold, a scalar
index per filterable column, compaction and cleanup of old versions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from lancedb.index import Bitmap, BTree, IvfPq, LabelList

from chroma_serverless.records import clones, layout
from chroma_serverless.records.engine import LANCE_DISTANCE, engine_errors

if TYPE_CHECKING:
    from collections.abc import Callable

    from chroma_serverless.records.engine import Description
    from chroma_serverless.types import Collection, IndexPolicy

# LanceDB 0.40's optimize cannot tell lance's cleanup to skip tagged versions
# (error_if_tagged_old_versions is not passed through): with a tagged version older than the
# retention window, cleanup fails after compacting, before the indexes are updated. Forks pin
# their versions by branches, which cleanup keeps without failing (``clones.py``); a table
# whose forks were pinned by tags before that has its tags turned into branches, and goes on.
TAGGED = "tagged version(s) have been marked for cleanup"
RETRAIN_GROWTH = 4  # the vector index is trained again once the rows reach this many times
TRAINED = re.compile(rf"{layout.EMBEDDING}_ivf_(\d+)")  # the name records the rows trained on


def index_status(table: Any, described: Description, policy: IndexPolicy) -> tuple[int, int]:
    """(rows in the vector index, rows searched by scan); see ``RecordStore.index_status``."""
    rows = int(table.count_rows())
    index = described.vector_index
    if index is not None:
        unindexed = int(index.num_unindexed_rows or 0)
        return rows - unindexed, unindexed
    if rows < policy.threshold:
        return rows, 0
    return 0, rows


def maintain(
    table: Any,
    collection: Collection,
    policy: IndexPolicy,
    growing: bool,
    aged: Callable[[], set[int] | None] = lambda: None,
) -> dict[str, Any]:
    """Index, compact and clean one table; safe to run while others read and write (a write
    committed between its steps makes the caller start over, from what is already built).

    Builds the IVF-PQ index once the collection passes ``policy.threshold`` rows (and again
    once it has grown ``RETRAIN_GROWTH``-fold since, :func:`_vector_index`), a scalar
    index on every metadata column (BTree; Bitmap for bools; LabelList for lists; none for
    sparse vectors) and on ``id``/``seq``/``written``; then ``optimize`` folds new rows into
    the indexes, compacts small fragments and removes versions older than the retention window
    but those forks were made from. It runs when there is something to index or compact, or
    else when ``aged`` (the versions past the window, but the newest) names one no fork pins.
    """
    report: dict[str, Any] = {"rows": int(table.count_rows())}
    if growing and report["rows"] >= policy.threshold:
        # A large collection still being written (an ingest): compacting now would rewrite
        # it again and again (each rewrite kept for the retention window) and its vector
        # index would be sized from a fraction of its rows; all waits for the writes to end,
        # but the ids' index, which every write needs.
        report["deferred"] = True
        if _ids_behind(table, policy):
            table.create_index(layout.ID, config=BTree(), replace=True)
            report["scalar_indexes"] = [layout.ID]
        return report
    indices = list(table.list_indices())
    vector_index = _vector_index(table, indices, collection, policy, report["rows"])
    if vector_index is not None:
        report["vector_index"] = vector_index
    indexed = {tuple(index.columns) for index in indices}
    scalar = [
        f.name
        for f in table.schema
        if f.name not in (layout.EMBEDDING, layout.DOCUMENT, layout.URI)
        and not pa.types.is_struct(f.type)  # sparse vectors: records/sparse.py indexes them
    ]
    for name in scalar:
        scalar_index = _scalar_index(table.schema.field(name).type)
        if (name,) not in indexed and scalar_index is not None:
            table.create_index(name, config=scalar_index)
            report.setdefault("scalar_indexes", []).append(name)
    stats = table.stats()
    unindexed = sum(int(index.num_unindexed_rows or 0) for index in table.list_indices())
    built = "vector_index" in report or "scalar_indexes" in report  # versions to clean up
    if (
        built
        or unindexed
        or stats["fragment_stats"]["num_fragments"] > policy.fragment_target
        or _reclaimable(table, aged())
    ):
        window = timedelta(seconds=policy.retention_seconds)
        try:
            table.optimize(cleanup_older_than=window)
        except RuntimeError as exc:
            if TAGGED not in str(exc) or not clones.branch_pins(table):
                raise
            table.checkout_latest()
            table.optimize(cleanup_older_than=window)
            report["pins_branched"] = True
        report["optimized"] = True
    report["fragments"] = table.stats()["fragment_stats"]["num_fragments"]
    return report


def trained_rows(index: Any, policy: IndexPolicy) -> int:
    """The rows the vector ``index`` was trained on, as its name records them (an index built
    before names recorded them was built past the threshold: taken as trained on that many)."""
    match = TRAINED.fullmatch(str(index.name))
    return int(match.group(1)) if match else policy.threshold


def _vector_index(
    table: Any, indices: list[Any], collection: Collection, policy: IndexPolicy, rows: int
) -> str | None:
    """Build the IVF-PQ index past the threshold, named after the rows it is trained on, and
    train it again (a new index, then the old one dropped) once the collection has grown to
    ``RETRAIN_GROWTH`` times those rows: partitions sized and centroids placed for a tenth of
    today's rows cost recall and probe ever larger partitions. Returns what was done."""
    current = sorted(
        (i for i in indices if i.columns == [layout.EMBEDDING]),
        key=lambda i: trained_rows(i, policy),
    )
    done = None
    trained = trained_rows(current[-1], policy) if current else None
    if rows >= policy.threshold and (trained is None or rows >= RETRAIN_GROWTH * trained):
        dimension = int(table.schema.field(layout.EMBEDDING).type.list_size)
        config = IvfPq(
            distance_type=LANCE_DISTANCE[collection.space],  # type: ignore[arg-type]
            num_partitions=max(1, rows // policy.rows_per_partition),
            num_sub_vectors=max(1, dimension // policy.sub_vector_dims),
            num_bits=policy.num_bits,
            sample_rate=policy.sample_rate,
            max_iterations=policy.max_iterations,
        )
        with engine_errors():
            table.create_index(
                layout.EMBEDDING, config=config, name=f"{layout.EMBEDDING}_ivf_{rows}"
            )
        done = "built" if trained is None else "retrained"
    else:
        current = current[:-1]  # the newest stays; older ones a crash left are dropped
    for stale in current:
        table.drop_index(stale.name)
    return done


def _reclaimable(table: Any, aged: set[int] | None) -> bool:
    """Whether some of the ``aged`` versions is pinned by no fork (cleanup would remove it)."""
    if not aged:
        return False
    return bool(aged - set(clones.pinned(table)))


def _ids_behind(table: Any, policy: IndexPolicy) -> bool:
    """Whether the ids' index misses ``policy.threshold`` rows or more. An add or upsert joins
    its ids against the rows the index misses, by scan: a 1,000-record add into 575k rows took
    1.2 s with 300k of them missed, 20 ms with none; rebuilding the index took 0.2 s (7 MB)."""
    for index in table.list_indices():
        if index.columns == [layout.ID]:
            return int(index.num_unindexed_rows or 0) >= policy.threshold
    return True


def _scalar_index(arrow_type: pa.DataType) -> Any | None:
    if pa.types.is_list(arrow_type):
        # LanceDB has no label-list index of floats: such a column is filtered by scan.
        return None if pa.types.is_floating(arrow_type.value_type) else LabelList()
    if pa.types.is_boolean(arrow_type):
        return Bitmap()
    return BTree()
