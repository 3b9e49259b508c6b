"""The version check that starts every operation, without the engine where the files tell.

Lance commits version ``v`` of a table by creating ``_versions/{u64::MAX - v:020}.manifest``
(its V2 naming) once and whole: a conditional PUT on S3, a rename that never replaces locally;
versions are consecutive. So a table is still at ``v`` exactly when the manifest of ``v + 1``
does not exist: one HEAD on S3, where the engine's check is a LIST (12 times the price, and
slower), and one ``open`` locally, where the engine lists every retained version's manifest
(0.45 ms with 118 of them here, plus a trip to LanceDB's event-loop thread that waits for the
GIL under load). When the version moved, the engine checks out the new one.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

if TYPE_CHECKING:
    from collections.abc import Mapping

U64_MAX = 2**64 - 1


def manifest(version: int) -> str:
    """The file name of ``version``'s manifest (V2 naming: the newest sorts first)."""
    return f"{U64_MAX - version:020d}.manifest"


class Versions:
    """Manifests of the tables under the record store's root, local or on S3 (the filesystem is
    set up on first use)."""

    def __init__(self, root: str, storage_options: Mapping[str, str]) -> None:
        self.local = "://" not in root
        self.supported = self.local or root.startswith("s3://")
        self.root = os.path.abspath(root) if self.local else root.removeprefix("s3://").rstrip("/")
        self._options = dict(storage_options)

    @functools.cached_property
    def fs(self) -> pafs.FileSystem:
        return pafs.LocalFileSystem() if self.local else s3_filesystem(self._options)

    def named(self, collection_id: str, version: int) -> bool:
        """Whether the table's manifests follow the V2 naming (checked on its newest version;
        a table of an older engine may not): ``False`` when it cannot tell."""
        try:
            return self._exists(collection_id, version)
        except OSError:
            return False

    def latest_is(self, collection_id: str, version: int) -> bool:
        """Whether ``version`` is still the newest of a table whose manifests are :meth:`named`:
        ``False`` when it cannot tell."""
        try:
            return self.supported and not self._exists(collection_id, version + 1)
        except OSError:
            return False

    def _exists(self, collection_id: str, version: int) -> bool:
        """One HEAD on S3 (opening a file reads nothing until asked)."""
        if not self.supported:
            return False
        path = f"{self.root}/{collection_id}.lance/_versions/{manifest(version)}"
        try:
            with self.fs.open_input_file(path):
                return True
        except FileNotFoundError:
            return False


def s3_filesystem(options: Mapping[str, str]) -> pafs.S3FileSystem:
    """An S3 filesystem from LanceDB's storage options (credentials default to the
    environment, as LanceDB's do)."""
    endpoint = options.get("aws_endpoint")
    scheme = "https"
    if endpoint is not None:
        scheme, _, endpoint = endpoint.rpartition("://")
    return pafs.S3FileSystem(
        access_key=options.get("aws_access_key_id"),
        secret_key=options.get("aws_secret_access_key"),
        session_token=options.get("aws_session_token"),
        region=options.get("aws_region"),
        endpoint_override=endpoint,
        scheme=scheme or "https",
    )
