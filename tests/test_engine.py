"""What ``records/engine.py`` reads of LanceDB without asking it: the newest version of a local
table from the names of its manifests must be the version the engine reports, after every kind
of commit (writes, compaction, an index build)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import lancedb
import numpy as np

from chroma_serverless.records import LanceRecordStore
from chroma_serverless.records.engine import LocalVersions
from chroma_serverless.types import Collection, DeleteRequest, Filter, IndexPolicy, RecordBatch

if TYPE_CHECKING:
    from pathlib import Path


def test_local_versions_follow_every_commit(tmp_path: Path) -> None:
    uri = str(tmp_path / "records")
    store = LanceRecordStore(uri, policy=IndexPolicy(threshold=256))
    target = Collection(str(uuid.uuid4()), "c", "t", "d", None, {"hnsw": {"space": "l2"}}, 8)
    versions = LocalVersions(uri)
    assert versions.newest(target.id) is None  # no table yet

    def engine_version() -> int:
        return int(lancedb.connect(uri).open_table(target.id).version)

    seen = []
    vectors = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    for start in range(0, 300, 100):
        ids = [f"r{i}" for i in range(start, start + 100)]
        store.add(target, RecordBatch(ids=ids, embeddings=vectors[start : start + 100]))
        seen.append(versions.newest(target.id))
        assert seen[-1] == engine_version()
    store.delete(target, DeleteRequest(Filter(ids=["r0", "r1"])))
    assert versions.newest(target.id) == engine_version()
    store.maintain(target)  # compaction and the vector index: commits of their own
    assert versions.newest(target.id) == engine_version() > seen[-1] > seen[0]


def test_local_versions_cannot_tell_for_object_storage() -> None:
    assert LocalVersions("s3://bucket/records").newest("any") is None
