"""The version check that starts every operation, by the manifests' names where they tell.

Lance commits version ``v`` of a table by creating ``_versions/{u64::MAX - v:020}.manifest``
(its V2 naming) once and whole: a conditional PUT on S3, a rename that never replaces locally.
Versions are consecutive, so a table last confirmed at ``v`` is still there exactly when the
manifest of ``v + 1`` does not exist, unless cleanup removed it. Cleanup removes only versions
older than the retention window (never the newest), and ``v + 1`` can only have been committed
after ``v`` was confirmed the newest: within the retention window of that confirmation, less a
margin for clocks, its absence is proof. That is one HEAD on S3, where the engine's check is a
LIST (twelve times the price, and its latency grows with the versions kept), and one ``stat``
locally. Past that window, or with a window too short to trust (a fork pins ``v`` with a tag
while cleanup may remove ``v + 1``), the check lists: the engine's LIST on S3, the directory
locally (the smallest name is the newest version).
"""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

if TYPE_CHECKING:
    from collections.abc import Mapping

U64_MAX = 2**64 - 1
MANIFEST_NAME_LENGTH = len("00000000000000000000.manifest")
CLOCK_MARGIN_S = 300  # how far the clocks of the writers and of a cleanup may disagree
CHECK_THREADS = 4


def manifest(version: int) -> str:
    """The file name of ``version``'s manifest (V2 naming: the newest sorts first)."""
    return f"{U64_MAX - version:020d}.manifest"


class Versions:
    """Manifests of the tables under the record store's root (a directory or ``s3://``; on
    other storage nothing tells and the engine checks). The S3 filesystem and the threads that
    run checks beside a read are set up on first use."""

    def __init__(self, root: str, storage_options: Mapping[str, str], retention_s: int) -> None:
        self.local = "://" not in root
        self.remote = root.startswith("s3://")
        self.root = os.path.abspath(root) if self.local else root.removeprefix("s3://").rstrip("/")
        self._options = dict(storage_options)
        self._trusted_s = retention_s - CLOCK_MARGIN_S

    @functools.cached_property
    def fs(self) -> pafs.FileSystem:
        return pafs.LocalFileSystem() if self.local else s3_filesystem(self._options)

    @functools.cached_property
    def checks(self) -> ThreadPoolExecutor:
        """Threads for checks that run while a read goes ahead on the version held."""
        return ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="version-check")

    def named(self, collection_id: str, version: int) -> bool:
        """Whether the table's manifests follow the V2 naming (asked once per handle, of its
        version then: a table of an older engine may not); ``False`` when it cannot tell."""
        try:
            return (self.local or self.remote) and self._exists(collection_id, version)
        except OSError:
            return False

    def unchanged(self, collection_id: str, version: int, confirmed_at: float) -> bool:
        """Whether a table of :meth:`named` manifests, confirmed at ``version`` as the newest
        at ``time.monotonic()`` ``confirmed_at``, still is; ``False`` when it cannot tell."""
        try:
            if time.monotonic() - confirmed_at < self._trusted_s:
                return (self.local or self.remote) and not self._exists(collection_id, version + 1)
            return self.local and self._newest_listed(collection_id) == version
        except OSError:
            return False

    def _exists(self, collection_id: str, version: int) -> bool:
        path = f"{self.root}/{collection_id}.lance/_versions/{manifest(version)}"
        if self.local:
            return os.path.exists(path)
        try:
            with self.fs.open_input_file(path):  # one HEAD: opening reads nothing
                return True
        except FileNotFoundError:
            return False

    def _newest_listed(self, collection_id: str) -> int | None:
        names = os.listdir(f"{self.root}/{collection_id}.lance/_versions")
        manifests = [n for n in names if len(n) == MANIFEST_NAME_LENGTH and n.endswith(".manifest")]
        newest = min(manifests, default="")
        return U64_MAX - int(newest[:20]) if newest[:20].isdigit() else None


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
