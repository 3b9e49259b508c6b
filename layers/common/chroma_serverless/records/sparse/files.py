"""Where inverted indexes are kept: one Arrow IPC file per key and table version, next to the
table's own files (a local file or an S3 object)."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs

from chroma_serverless.records import layout
from chroma_serverless.records.sparse.index import Index
from chroma_serverless.records.versions import s3_filesystem

if TYPE_CHECKING:
    from collections.abc import Mapping


INDEX_DIR = "_sparse"
KEPT_VERSIONS = 2  # a reader that listed the previous file can still load it


class IndexFiles:
    """Index files under the record store's root, local or on S3 (the filesystem is set up on
    first use: a process that never searches sparse vectors never pays for it)."""

    def __init__(self, root: str, storage_options: Mapping[str, str]) -> None:
        self.local = not root.startswith("s3://")
        self.root = os.path.abspath(root) if self.local else root.removeprefix("s3://").rstrip("/")
        self._options = dict(storage_options)

    @functools.cached_property
    def fs(self) -> pafs.FileSystem:
        return pafs.LocalFileSystem() if self.local else s3_filesystem(self._options)

    def directory(self, collection_id: str, key: str) -> str:
        return f"{self.root}/{collection_id}.lance/{INDEX_DIR}/{layout.encode_key(key)}"

    def versions(self, collection_id: str, key: str) -> list[int]:
        return self._versions(self.directory(collection_id, key))

    def _versions(self, directory: str) -> list[int]:
        selector = pafs.FileSelector(directory, allow_not_found=True)
        names = [info.base_name for info in self.fs.get_file_info(selector)]
        return sorted(int(n.removesuffix(".arrow")) for n in names if n.endswith(".arrow"))

    def inherit(self, source_id: str, fork_id: str, version: int) -> list[str]:
        """Give a fork made of ``version`` of its source's table the source's newest index of
        each key no newer than that version (a copy, server-side on S3; the fork's table keeps
        the source's version numbers and rows, written stamps included, so the index serves
        the fork as it served the source). Returns the keys' directory names copied."""
        selector = pafs.FileSelector(
            f"{self.root}/{source_id}.lance/{INDEX_DIR}", allow_not_found=True
        )
        copied = []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.Directory:
                continue
            found = self._versions(info.path)
            usable = [v for v in found if v <= version]
            if not usable:
                continue
            directory = f"{self.root}/{fork_id}.lance/{INDEX_DIR}/{info.base_name}"
            name = f"{usable[-1]:020d}.arrow"
            target = f"{directory}/{name}"
            if self.local:
                self.fs.create_dir(directory, recursive=True)
                target = f"{directory}/{name}.{os.getpid()}.tmp"
            self.fs.copy_file(f"{info.path}/{name}", target)
            if self.local:
                self.fs.move(target, f"{directory}/{name}")
            copied.append(info.base_name)
        return copied

    def read(self, collection_id: str, key: str, version: int) -> Index:
        path = f"{self.directory(collection_id, key)}/{version:020d}.arrow"
        with self.fs.open_input_file(path) as source:
            return Index(pa.ipc.open_file(source).read_all())

    def write(self, collection_id: str, key: str, version: int, content: pa.Table) -> None:
        directory = self.directory(collection_id, key)
        path = f"{directory}/{version:020d}.arrow"
        target = path  # an S3 object appears whole; a local file does once renamed
        if self.local:
            self.fs.create_dir(directory, recursive=True)
            target = f"{path}.{os.getpid()}.tmp"
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with (
            self.fs.open_output_stream(target) as sink,
            pa.ipc.new_file(sink, content.schema, options=options) as writer,
        ):
            writer.write_table(content)
        if self.local:
            self.fs.move(target, path)
        for old in self.versions(collection_id, key)[:-KEPT_VERSIONS]:
            self.fs.delete_file(f"{directory}/{old:020d}.arrow")
