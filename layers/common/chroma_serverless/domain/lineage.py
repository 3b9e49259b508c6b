"""Fork lineage: the tree of collections forked, directly or not, from one root collection.

A fork shares the files of the collection it was forked from, and a fork of a fork those of
every collection above it. So a collection's storage must stay while the collection exists or
any collection below it still needs it (is *held*); a deleted collection that is held stays in
the tree, its storage kept, until the last collection below it is gone. The tree itself is kept
while its root is held: ``fork_count`` counts every fork ever made in it, deleted or not, as
Chroma does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class Lineage:
    """One fork tree: its root, the collection each fork was forked from, and which of its
    collections still exist."""

    root: str
    parents: Mapping[str, str]  # fork id -> id of the collection it was forked from
    live: frozenset[str]

    @property
    def fork_count(self) -> int:
        return len(self.parents)

    def held(self) -> frozenset[str]:
        """Ids whose storage must stay: live collections and every ancestor of one."""
        held: set[str] = set()
        for collection_id in self.live:
            while collection_id not in held:
                held.add(collection_id)
                if collection_id not in self.parents:
                    break
                collection_id = self.parents[collection_id]
        return frozenset(held)

    def releasable(self, collection_id: str) -> list[str]:
        """``collection_id`` and its ancestors, nearest first, up to the first one still held:
        the storage a deletion of ``collection_id`` lets go (nothing if it is held itself)."""
        held = self.held()
        released: list[str] = []
        current: str | None = collection_id
        while current is not None and current not in held:
            released.append(current)
            current = self.parents.get(current)
        return released
