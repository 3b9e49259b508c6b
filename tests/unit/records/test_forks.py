"""Version cleanup of a forked table: a fork pins exactly the version it was made from (a branch
of its source), every other version past the retention window is cleaned up, on a run with
something to compact or on a quiet one alike; pins made by tags before branches are turned into
branches; a fork's sparse indexes come with it."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from chroma_serverless.records import clones
from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.records.versions import Versions
from chroma_serverless.types import GetRequest, IndexPolicy, RecordBatch
from tests import factories
from tests.support.moto import records_place

if TYPE_CHECKING:
    from pathlib import Path

    from chroma_serverless.types import Collection

pytestmark = pytest.mark.filterwarnings(r"ignore:optimize\(cleanup_older_than=0\):UserWarning")

ROWS, DIM = 200, 16
ZERO = IndexPolicy(threshold=100, sub_vector_dims=4, rows_per_partition=50, retention_seconds=0)
IDS = [f"r{i}" for i in range(ROWS)]


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    return records_place(request.param, request, tmp_path)


@pytest.fixture
def store(place: tuple[str, dict[str, str]]) -> LanceRecordStore:
    return LanceRecordStore(place[0], place[1], ZERO)


def vectors(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(ROWS, DIM)).astype(np.float32)


def rows(seed: int) -> RecordBatch:
    return RecordBatch(ids=IDS, embeddings=vectors(seed))


def embeddings(store: LanceRecordStore, c: Collection) -> np.ndarray:
    got = store.get(c, GetRequest(include=("embeddings",)))
    assert got.ids == IDS and got.embeddings is not None
    return np.asarray(got.embeddings)


def versions(store: LanceRecordStore, c: Collection) -> list[int]:
    return [point.version for point in store.restore_points(c)]


def forked(store: LanceRecordStore) -> tuple[Collection, Collection, int]:
    """A maintained source of ``ROWS`` rows and a fork of it, and the version forked."""
    source = factories.collection(dimension=DIM)
    store.add(source, rows(0))
    store.maintain(source)
    version = versions(store, source)[-1]
    fork = dataclasses.replace(source, id=f"fork-of-{source.id}")
    assert store.fork(source, fork.id) == DIM
    return source, fork, version


def test_cleanup_keeps_the_version_a_fork_was_made_from_and_no_other(
    store: LanceRecordStore,
) -> None:
    source, fork, version = forked(store)
    for seed in (1, 2, 3):  # every row rewritten: a version of every row each time
        store.upsert(source, rows(seed))
        store.maintain(source)

    kept = versions(store, source)
    assert kept[0] == version
    assert len(kept) <= 3  # the fork's, and what the last maintenance left
    assert np.array_equal(embeddings(store, fork), vectors(0))
    assert np.array_equal(embeddings(store, source), vectors(3))

    store.unpin(source.id, fork.id)  # the fork let go (deleted): its version goes too
    store.maintain(source)  # nothing written since: the version past the window still goes
    assert version not in versions(store, source)
    assert np.array_equal(embeddings(store, source), vectors(3))


def test_a_quiet_table_is_cleaned_up_only_when_a_version_no_fork_pins_is_due(
    place: tuple[str, dict[str, str]],
) -> None:
    keeping = LanceRecordStore(place[0], place[1], dataclasses.replace(ZERO, retention_seconds=3))
    source, _, version = forked(keeping)
    assert "optimized" not in keeping.maintain(source)  # compact, indexed: nothing due
    keeping.upsert(source, rows(1))
    keeping.maintain(source)
    assert len(versions(keeping, source)) > 2
    time.sleep(3.5)  # the versions before the latest are past the window now

    assert keeping.maintain(source)["optimized"]
    assert versions(keeping, source)[0] == version
    assert "optimized" not in keeping.maintain(source)  # what is left is pinned or the newest


def test_forks_pinned_by_tags_are_pinned_by_branches_after_the_next_cleanup(
    store: LanceRecordStore, place: tuple[str, dict[str, str]]
) -> None:
    source = factories.collection(dimension=DIM)
    store.add(source, rows(0))
    store.maintain(source)
    table: Any = store._tables.open(source.id)
    version = int(table.version)
    name = clones.pin_name("old-fork")
    table.tags.create(name, version)  # as forks were pinned before
    store.upsert(source, rows(1))

    report = store.maintain(source)  # LanceDB refuses to clean up past a tagged version

    assert report["optimized"] and report["pins_branched"]
    table.checkout_latest()
    assert table.tags.list() == {}
    assert clones.pinned(table) == [version]
    assert versions(store, source)[0] == version
    store.unpin(source.id, "old-fork")
    assert clones.pinned(table) == []


def test_aged_names_the_versions_past_the_window_but_the_newest(
    store: LanceRecordStore, place: tuple[str, dict[str, str]]
) -> None:
    source = factories.collection(dimension=DIM)
    store.add(source, rows(0))
    store.add(source, RecordBatch(ids=["x"], embeddings=np.ones((1, DIM), np.float32)))
    newest = versions(store, source)[-1]
    check = Versions(place[0], place[1], retention_s=0)
    assert check.aged(source.id, 3600) == set()
    assert check.aged(source.id, 0) == set(versions(store, source)) - {newest}
    assert check.aged("no-such-table", 0) == set()
