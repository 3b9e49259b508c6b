"""The version check from the manifests' names (``records/versions.py``), locally and on S3
(moto's server over HTTP): after every kind of commit (writes, a delete, compaction and the
index builds of maintenance) the engine's newest version is the one it calls the latest, and
the one before is not."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import lancedb
import numpy as np
import pytest

from chroma_serverless.records import LanceRecordStore
from chroma_serverless.records.versions import Versions
from chroma_serverless.types import Collection, DeleteRequest, Filter, IndexPolicy, RecordBatch
from tests.conftest import s3_storage_options

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_the_newest_version_is_the_latest_after_every_commit(
    storage: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if storage == "s3":
        bucket: str = request.getfixturevalue("bucket")
        uri = f"s3://{bucket}/{uuid.uuid4().hex}"
        options = s3_storage_options(request.getfixturevalue("moto"))
    else:
        uri, options = str(tmp_path / "records"), {}
    store = LanceRecordStore(uri, options, IndexPolicy(threshold=256))
    target = Collection(str(uuid.uuid4()), "c", "t", "d", None, {"hnsw": {"space": "l2"}}, 8)
    versions = Versions(uri, options)
    assert not versions.named(target.id, 1)  # no table yet

    def newest() -> int:
        version = int(lancedb.connect(uri, storage_options=options).open_table(target.id).version)
        assert versions.named(target.id, version)
        assert versions.latest_is(target.id, version)
        assert not versions.latest_is(target.id, version - 1)
        return version

    seen = []
    vectors = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    for start in range(0, 300, 100):
        ids = [f"r{i}" for i in range(start, start + 100)]
        store.add(target, RecordBatch(ids=ids, embeddings=vectors[start : start + 100]))
        seen.append(newest())
    store.delete(target, DeleteRequest(Filter(ids=["r0", "r1"])))
    seen.append(newest())
    store.maintain(target)  # compaction and the vector index: commits of their own
    assert newest() > seen[-1] > seen[0]


def test_other_storage_is_left_to_the_engine() -> None:
    versions = Versions("gs://bucket/records", {})
    assert not versions.named("any", 1)
    assert not versions.latest_is("any", 1)
