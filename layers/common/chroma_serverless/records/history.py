"""A collection's versions: copy-on-write forks of one, the versions kept (the window of
point-in-time restore), a restore as a new version, and scans of one version (exports)."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING

from chroma_serverless.ports import SCAN_ROWS
from chroma_serverless.records import bulk, clones, layout, operations
from chroma_serverless.records.engine import engine_errors, retry_on_conflict
from chroma_serverless.types import RestorePoint

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chroma_serverless.domain.columns import ColumnBatch
    from chroma_serverless.records.tables import Tables
    from chroma_serverless.types import Collection


class History:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    def fork(
        self, source_id: str, fork_id: str, version: int | None = None
    ) -> tuple[int, int] | None:
        """Clone the source's latest version (or ``version``) as table ``fork_id``; returns the
        dimension and the version cloned (the fork's table starts at that version number), or
        ``None`` if the source has no records."""
        source = (
            self._tables.open(source_id)
            if version is None
            else self._tables.version(source_id, version)
        )
        if source is None:
            return None
        forked = clones.clone(
            self._tables.db, source, fork_id, self._tables.storage_options, version
        )
        return int(forked.schema.field(layout.EMBEDDING).type.list_size), int(forked.version)

    def unpin(self, source_id: str, fork_id: str) -> None:
        source = self._tables.open(source_id)
        if source is not None:
            clones.unpin(source, fork_id)

    def scan(
        self, collection: Collection, version: int | None = None, rows: int = SCAN_ROWS
    ) -> Iterator[ColumnBatch]:
        table = self._tables.version(collection.id, version)
        if table is None:
            return
        columns = bulk.data_columns(table.schema.names)
        with engine_errors():
            reader = table.search().select(columns).limit(None).to_batches(rows)
        for data in reader:
            yield bulk.from_layout(data)

    def restore_points(self, collection: Collection) -> list[RestorePoint]:
        table = self._tables.open(collection.id)
        if table is None:
            return []
        versions = sorted(table.list_versions(), key=lambda v: int(v["version"]))
        files = self._tables.files
        made: dict[int, str | None] = {}
        if files.local or files.remote:  # what made each version, from its transaction
            numbers = [int(v["version"]) for v in versions]
            made = operations.made_by(files.fs, f"{files.root}/{collection.id}.lance", numbers)
        return [
            RestorePoint(
                int(v["version"]),
                v["timestamp"].astimezone(UTC),  # LanceDB reports local time, naive
                int(v["metadata"]["total_rows"]),
                made.get(int(v["version"])),
            )
            for v in versions
        ]

    @retry_on_conflict
    def restore(self, collection: Collection, version: int) -> int:
        table = self._tables.version(collection.id, version)
        assert table is not None, "restore needs a stored version"
        with engine_errors():
            table.restore()
        return int(table.version)
