"""A write log's tail as reads see it, without folding it into the table: the outcome of the
entries after the fold mark over the version the mark names.

The outcome (:func:`resolve`) is what applying the entries one by one to that version would
leave for the ids they touch: each ends as one full row, or deleted. Reads then answer from the
version with those ids hidden, merged with the rows the tail leaves (a small in-memory
snapshot). ``Writes.fold`` commits the same outcome, so a read answers the same before and
after the fold. Each process keeps the tail it built per collection and extends it with the
entries appended since, so a read after a write fetches only the new entries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from chroma_serverless.domain.columns import value_kind
from chroma_serverless.records import arrow, layout
from chroma_serverless.records.masks import row_mask
from chroma_serverless.records.memory.snapshot import Snapshot

if TYPE_CHECKING:
    from collections.abc import Iterable

    from chroma_serverless.records.entries import Entry
    from chroma_serverless.types import Filter, LogState

Row = dict[str, Any]  # a record as ``arrow.new_row`` builds it
Lookup = Callable[[list[str]], dict[str, Row]]  # stored rows of ids, from the version read


def resolve(entries: Iterable[Entry], state: dict[str, Row | None], lookup: Lookup) -> set[str]:
    """Apply ``entries`` in order to ``state`` (id -> its row, ``None``: absent), looking the
    ids it does not hold yet up in the version read; returns the ids found there."""
    found: set[str] = set()
    for entry in entries:
        batch = entry.batch
        unseen = [i for i in dict.fromkeys(batch.ids) if i not in state]
        if unseen:
            stored = lookup(unseen)
            found.update(stored)
            state.update((i, stored.get(i)) for i in unseen)
        for i, record_id in enumerate(batch.ids):
            old = state[record_id]
            if entry.operation == "delete":
                state[record_id] = None
            elif old is not None and entry.operation != "add":
                state[record_id] = arrow.merged_row(old, batch, i)
            elif old is None and entry.operation != "update":
                state[record_id] = arrow.new_row(batch, i, entry.clock + i)
    return found


@dataclass
class Tail:
    """The outcome of entries ``folded + 1 .. upto`` over ``version``."""

    version: int | None
    folded: int
    upto: int
    dimension: int
    state: dict[str, Row | None] = field(default_factory=dict)
    stored: set[str] = field(default_factory=set)  # touched ids the version holds
    _snapshot: Snapshot | None = None

    @property
    def hidden(self) -> pa.Array:
        """The ids whose rows in the version the tail replaces or deletes."""
        return pa.array(list(self.state), pa.string())

    @property
    def snapshot(self) -> Snapshot:
        """The rows the tail leaves, held as a snapshot the memory tier's reads can answer."""
        if self._snapshot is None:
            rows = [row for row in self.state.values() if row is not None]
            self._snapshot = Snapshot.read(0, rows_table(rows, self.dimension))
        return self._snapshot

    def evaluates(self, request_filter: Filter) -> bool:
        """Whether reads can evaluate ``request_filter`` on the tail's rows (not a regex)."""
        return row_mask(request_filter, self.snapshot.data) is not None

    def extend(self, entries: list[Entry], upto: int, lookup: Lookup) -> None:
        self.stored |= resolve(entries, self.state, lookup)
        self.upto = upto
        self._snapshot = None

    def count(self, stored_rows: int) -> int:
        """Rows of the collection, given the version's count."""
        return stored_rows - len(self.stored) + self.snapshot.num_rows


class Tails:
    """This process's tail per collection (built on demand, extended as the log grows)."""

    def __init__(self) -> None:
        self._tails: dict[str, Tail] = {}
        self._lock = threading.Lock()

    def of(
        self,
        collection_id: str,
        state: LogState,
        dimension: int,
        entries: Callable[[int, int], list[Entry]],
        lookup: Lookup,
    ) -> Tail:
        """The tail of ``state`` (entries fetched with ``entries(after, upto)``)."""
        with self._lock:
            held = self._tails.get(collection_id)
        if (
            held is None
            or (held.version, held.folded) != (state.version, state.folded)
            or held.upto > state.head
            or held.dimension != dimension
        ):
            held = Tail(state.version, state.folded, state.folded, dimension)
        if held.upto < state.head:
            extended = Tail(
                held.version, held.folded, held.upto, dimension, dict(held.state), set(held.stored)
            )
            extended.extend(entries(held.upto, state.head), state.head, lookup)
            held = extended
        with self._lock:
            current = self._tails.get(collection_id)
            if current is None or current.upto <= held.upto:
                self._tails[collection_id] = held
        return held

    def forget(self, collection_id: str | None = None) -> None:
        with self._lock:
            if collection_id is None:
                self._tails.clear()
            else:
                self._tails.pop(collection_id, None)


def rows_table(rows: list[Row], dimension: int) -> pa.Table:
    """``rows`` in the table layout: the base columns, and one typed column per metadata key
    and kind they hold."""
    kinds = {
        layout.metadata_column(key, value_kind(value)): (key, value_kind(value))
        for row in rows
        for key, value in (row["metadata"] or {}).items()
    }
    vectors = np.asarray([row["embedding"] for row in rows], np.float32).reshape(-1, dimension)
    columns: dict[str, pa.Array] = {
        layout.ID: pa.array([row["id"] for row in rows], pa.string()),
        layout.SEQ: pa.array([row[layout.SEQ] for row in rows], pa.int64()),
        layout.EMBEDDING: arrow.vectors_array(list(vectors), dimension),
        layout.DOCUMENT: pa.array([row[layout.DOCUMENT] for row in rows], pa.string()),
        layout.URI: pa.array([row[layout.URI] for row in rows], pa.string()),
    }
    fields = [pa.field(name, columns[name].type) for name in columns]
    for name, (key, kind) in kinds.items():
        values = [arrow.value_of_kind(row["metadata"], key, kind) for row in rows]
        field_ = arrow.metadata_field(key, kind)
        columns[name] = pa.array(values, field_.type)
        fields.append(pa.field(name, field_.type))
    return pa.table(columns, schema=pa.schema(fields))
