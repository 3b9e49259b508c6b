"""The version check by the manifests' names (``records/versions.py``), locally and on S3 (moto's
server over HTTP): after every kind of commit (writes, a delete, compaction and the index
builds of maintenance) the engine's newest version is confirmed unchanged and the one before is
not; past the window in which that proof holds, or with a retention too short to give one, the
check lists instead, so a handle still sees what was written after its version once cleanup
has removed the versions in between."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import lancedb
import pytest

from chroma_serverless.records.store import LanceRecordStore
from chroma_serverless.records.versions import Versions
from chroma_serverless.types import (
    DeleteRequest,
    Filter,
    GetRequest,
    IndexPolicy,
    RecordBatch,
)
from tests import factories
from tests.factories import vectors
from tests.support.moto import records_place

if TYPE_CHECKING:
    from pathlib import Path

WEEK = 7 * 24 * 3600


@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_newest_version_is_confirmed_after_every_commit(
    where: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    uri, options = records_place(where, request, tmp_path)
    store = LanceRecordStore(uri, options, IndexPolicy(threshold=256))
    target = factories.collection(dimension=8)
    versions = Versions(uri, options, WEEK)
    assert not versions.named(target.id, 1)  # no table yet

    def newest() -> int:
        version = int(lancedb.connect(uri, storage_options=options).open_table(target.id).version)
        now = time.monotonic()
        assert versions.named(target.id, version)
        assert versions.unchanged(target.id, version, now)()
        assert not versions.unchanged(target.id, version - 1, now)()
        return version

    seen = []
    data = vectors(300)
    for start in range(0, 300, 100):
        ids = [f"r{i}" for i in range(start, start + 100)]
        store.add(target, RecordBatch(ids=ids, embeddings=data[start : start + 100]))
        seen.append(newest())
    store.delete(target, DeleteRequest(Filter(ids=["r0", "r1"])))
    seen.append(newest())
    store.maintain(target)  # compaction and the vector index: commits of their own
    assert newest() > seen[-1] > seen[0]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_past_the_retention_window_the_check_lists_or_leaves_it_to_the_engine(
    where: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    uri, options = records_place(where, request, tmp_path)
    target = factories.collection(dimension=8)
    LanceRecordStore(uri, options).add(target, RecordBatch(ids=["a"], embeddings=vectors(1)))
    version = int(lancedb.connect(uri, storage_options=options).open_table(target.id).version)
    long_ago = time.monotonic() - WEEK
    for check in (Versions(uri, options, WEEK), Versions(uri, options, retention_s=0)):
        listed = check.unchanged(target.id, version, long_ago)()
        assert listed is (where == "local")  # a listing locally; on S3 the engine's LIST
        assert not check.unchanged(target.id, version - 1, long_ago)()


@pytest.mark.filterwarnings(r"ignore:optimize\(cleanup_older_than=0\):UserWarning")
@pytest.mark.parametrize("reader_retention", [0, WEEK], ids=["same-retention", "longer-retention"])
@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_handle_sees_writes_after_cleanup_removed_the_versions_in_between(
    where: str, reader_retention: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A maintainer with zero retention removes ``v + 1`` (and ``v``) as soon as the table
    moved past them, so the next version's manifest is absent although the table moved on:
    whether the reader runs with that retention (it lists) or a longer one (an operator
    reclaiming storage with a maintainer of its own: ``v``'s manifest is gone too)."""
    uri, options = records_place(where, request, tmp_path)
    zero = IndexPolicy(threshold=10_000, retention_seconds=0, fragment_target=1)
    reader = LanceRecordStore(uri, options, replace(zero, retention_seconds=reader_retention))
    writer = LanceRecordStore(uri, options, zero)
    target = factories.collection(dimension=8)
    writer.add(target, RecordBatch(ids=["a"], embeddings=vectors(1)))
    assert reader.get(target, GetRequest(include=())).ids == ["a"]  # a handle held at v
    for i in range(3):
        writer.add(target, RecordBatch(ids=[f"b{i}"], embeddings=vectors(1, seed=i + 1)))
    writer.maintain(target)  # compacts, then removes every version but the newest
    assert reader.count(target) == 4
    assert sorted(reader.get(target, GetRequest(include=())).ids) == ["a", "b0", "b1", "b2"]


def test_other_storage_is_left_to_the_engine() -> None:
    versions = Versions("gs://bucket/records", {}, WEEK)
    assert not versions.named("any", 1)
    assert not versions.unchanged("any", 1, time.monotonic())()
