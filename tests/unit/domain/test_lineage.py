"""Which storage a fork tree holds, and what a deletion lets go."""

from __future__ import annotations

from chroma_serverless.domain.lineage import Lineage

# root -> a -> c, root -> b
PARENTS = {"a": "root", "b": "root", "c": "a"}


def tree(*live: str) -> Lineage:
    return Lineage("root", PARENTS, frozenset(live))


def test_live_collections_hold_themselves_and_their_ancestors() -> None:
    assert tree("c").held() == {"c", "a", "root"}
    assert tree("b").held() == {"b", "root"}
    assert tree("root").held() == {"root"}
    assert tree().held() == frozenset()


def test_deleting_a_leaf_releases_it_and_the_deleted_ancestors_nothing_else_needs() -> None:
    assert tree("root", "b").releasable("c") == ["c", "a"]
    assert tree("b").releasable("c") == ["c", "a"]  # root still held by b
    assert tree().releasable("c") == ["c", "a", "root"]


def test_a_collection_with_a_live_descendant_releases_nothing() -> None:
    assert tree("c").releasable("a") == []
    assert tree("c", "b").releasable("root") == []


def test_fork_count_counts_every_fork_live_or_not() -> None:
    assert tree().fork_count == tree("root", "a", "b", "c").fork_count == 3
