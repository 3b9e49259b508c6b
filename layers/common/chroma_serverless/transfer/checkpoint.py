"""Where an import stands, saved after every committed write, so that the same command run again
after a crash continues from there. Rows written after the last save are written again on
resume; upserts make that harmless.

A checkpoint is a JSON file in a state directory, named by a hash of what the import is (its
files, target and column mapping). It also holds each file's size and modification time: an
import does not resume over files that changed since, nor into a collection deleted and created
again since (a new id).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chroma_serverless.errors import InvalidArgumentError

if TYPE_CHECKING:
    from pathlib import Path


@dataclass
class Checkpoint:
    """The next row to import: row ``row`` of file ``file`` (indices into the job's files)."""

    path: Path
    job: dict[str, Any]
    sources: list[dict[str, Any]]
    collection_id: str | None = None
    file: int = 0
    row: int = 0
    records: int = 0  # rows imported so far, over all files
    done: bool = False
    updated: str = field(default="")
    created: bool = False  # the import created the collection

    def advance(self, collection_id: str, file: int, row: int, records: int, created: bool) -> None:
        self.collection_id, self.file, self.row = collection_id, file, row
        self.records += records
        self.created = created
        self._save()

    def finish(self, collection_id: str, created: bool) -> None:
        self.collection_id, self.created, self.done = collection_id, created, True
        self._save()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def _save(self) -> None:
        self.updated = datetime.now(UTC).isoformat(timespec="seconds")
        state = {k: v for k, v in asdict(self).items() if k != "path"}
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w") as file:
            json.dump(state, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)


def checkpoint(
    directory: Path, job: dict[str, Any], sources: list[dict[str, Any]], restart: bool
) -> Checkpoint:
    """The saved checkpoint of ``job``, or a fresh one (``restart``, or none saved)."""
    key = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:24]
    path = directory / f"import-{key}.json"
    fresh = Checkpoint(path, job, sources)
    if restart or not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        return fresh
    saved = json.loads(path.read_text())
    if saved["sources"] != sources:
        raise InvalidArgumentError(
            f"The files changed since the import recorded in {path} began; run it again with "
            "--restart to import them from the start"
        )
    return Checkpoint(path, **saved)
