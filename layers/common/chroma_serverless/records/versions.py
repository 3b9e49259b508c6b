"""The version check that starts every operation, by the manifests' names where they tell.

Lance commits version ``v`` of a table by creating ``_versions/{u64::MAX - v:020}.manifest``
(its V2 naming) once and whole: a conditional PUT on S3, a rename that never replaces locally.
Versions are consecutive, so a table last confirmed at ``v`` is still there exactly when the
manifest of ``v + 1`` does not exist, unless cleanup removed it. Cleanup removes only versions
older than the retention window (never the newest), and ``v + 1`` can only have been committed
after ``v`` was confirmed the newest: within the retention window of that confirmation, less a
margin for clocks, its absence is proof. A maintainer run with a shorter retention than this
process's (an operator reclaiming storage) would break that proof, so ``v``'s own manifest must
still be there too: a cleanup that removes ``v + 1`` removes the older ``v`` with it. That is
two HEADs on S3, made at once, where the engine's check is a LIST (priced as twelve HEADs, and
its latency grows with the versions kept), and two ``stat`` calls locally. Past that window,
or with a window too short to trust, the check lists: the engine's LIST on S3, the directory
locally (the smallest name is the newest version).
"""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import pyarrow.fs as pafs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

T = TypeVar("T")

U64_MAX = 2**64 - 1
MANIFEST_NAME_LENGTH = len("00000000000000000000.manifest")
CLOCK_MARGIN_S = 300  # how far the clocks of the writers and of a cleanup may disagree
CHECK_THREADS = 8


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

    def unchanged(
        self, collection_id: str, version: int, confirmed_at: float
    ) -> Callable[[], bool]:
        """Start checking whether a table of :meth:`named` manifests, confirmed at ``version``
        as the newest at ``time.monotonic()`` ``confirmed_at``, still is; returns the wait for
        the answer (``False`` when it cannot tell). On S3 both HEADs run on :attr:`checks`."""
        if time.monotonic() - confirmed_at >= self._trusted_s:
            listed = self.local and _known(lambda: self._newest_listed(collection_id)) == version
            return lambda: listed
        if not (self.local or self.remote):
            return lambda: False
        looks = [functools.partial(self._exists, collection_id, v) for v in (version, version + 1)]
        if self.local:
            kept, following = (_known(look) for look in looks)
            return lambda: bool(kept) and following is False
        pending = [self.checks.submit(_known, look) for look in looks]
        return lambda: bool(pending[0].result()) and pending[1].result() is False

    def aged(self, collection_id: str, age_s: float) -> set[int] | None:
        """The versions of the table, but its newest, whose manifests were written more than
        ``age_s`` seconds ago: what a cleanup with that retention would remove unless pinned
        (one LIST on S3); ``None`` when storage cannot tell."""
        if not (self.local or self.remote):
            return None
        selector = pafs.FileSelector(
            f"{self.root}/{collection_id}.lance/_versions", allow_not_found=True
        )
        try:
            listed = self.fs.get_file_info(selector)
        except OSError:
            return None
        written = {
            U64_MAX - int(info.base_name[:20]): info.mtime
            for info in listed
            if len(info.base_name) == MANIFEST_NAME_LENGTH
            and info.base_name.endswith(".manifest")
            and info.base_name[:20].isdigit()
        }
        cutoff = time.time() - age_s
        newest = max(written, default=None)
        return {
            version
            for version, at in written.items()
            if version != newest and at is not None and at.timestamp() < cutoff
        }

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


def _known(look: Callable[[], T]) -> T | None:
    """What ``look`` finds, or ``None`` when storage cannot say."""
    try:
        return look()
    except OSError:
        return None


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
