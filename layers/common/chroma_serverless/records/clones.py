"""Copy-on-write clones of a table: a fork's table is LanceDB's shallow clone of one version of
its source's table, pinned there by a branch of the source.

A shallow clone writes a manifest (and a transaction file) of its own whose fragments point at
the source's data, deletion and index files; no data file is copied, so a fork costs the same
at any size. The fork then writes only its own files. The source's version cleanup keeps every
file of the version a branch was made from, so the branch (``fork-<fork id>``, a manifest of
its own and no data) keeps the clone's files alive through the source's compactions and
cleanups, until the fork lets go (:func:`unpin`); every other old version is cleaned up as
usual. A tag would pin the version too, but LanceDB 0.40's ``optimize`` then refuses to clean
up at all once the tagged version is past the retention window (lance's
``error_if_tagged_old_versions`` is not passed through): forks made before the branches held
tags, which :func:`branch_pins` turns into branches. Facts measured on LanceDB 0.40
(docs/forks-and-restore.md): a fork of a 100k x 384 table on S3 is 3 PUTs (tag, transaction,
manifest); a fork's own compaction and cleanup never delete the source's files; a fork of a
fork reads files of both tables above it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

PIN_RETRIES = 3
_environment = threading.Lock()


PIN_PREFIX = "fork-"


def pin_name(fork_id: str) -> str:
    return f"{PIN_PREFIX}{fork_id}"


def clone(
    db: Any,
    source: Any,
    fork_id: str,
    storage_options: Mapping[str, str],
    version: int | None = None,
) -> Any:
    """Pin the latest version of ``source`` (or exactly ``version``, a point-in-time restore)
    for ``fork_id`` and clone it as table ``fork_id`` (at the same version number).

    The version is taken once and pinned before cloning, so the fork is a consistent snapshot
    even while others write to the source, and a cleanup racing the fork cannot remove it.
    """
    name = pin_name(fork_id)
    for attempt in range(PIN_RETRIES):
        pinned = int(source.version) if version is None else version
        try:
            source.branches.create(name, from_version=pinned)
            break
        except RuntimeError:
            existing = _pinned_at(source, name)
            if existing is not None:  # an earlier try got this far
                pinned = existing
                break
            # that version was cleaned up meanwhile: pin the newest one
            if attempt == PIN_RETRIES - 1 or version is not None:
                raise
            source.checkout_latest()
    with _object_store_environment(storage_options):
        return db.clone_table(fork_id, source.uri, source_version=pinned)


def unpin(source: Any, fork_id: str) -> None:
    """Let the source's cleanup remove what only ``fork_id`` needed (a no-op if not pinned)."""
    name = pin_name(fork_id)
    with contextlib.suppress(RuntimeError):  # "Ref not found": never pinned, or already let go
        source.branches.delete(name)
    with contextlib.suppress(RuntimeError):  # a pin made before branches
        source.tags.delete(name)


def branch_pins(table: Any) -> list[str]:
    """Turn the tags that pin versions of ``table`` for forks (made before forks were pinned by
    branches) into branches, so cleanup can run again; returns the tags turned."""
    turned = []
    for name, tag in table.tags.list().items():
        if not name.startswith(PIN_PREFIX):
            continue
        if _pinned_at(table, name) is None:
            table.branches.create(name, from_version=int(tag["version"]))
        table.tags.delete(name)
        turned.append(name)
    return turned


def pinned(table: Any) -> list[int]:
    """The versions of ``table`` its forks pin (by branch or, from before, by tag)."""
    branches = [int(b["parent_version"]) for b in table.branches.list().values()]
    return branches + [int(t["version"]) for t in table.tags.list().values()]


def _pinned_at(table: Any, name: str) -> int | None:
    """The version branch ``name`` of ``table`` was made from, if it exists."""
    branch = table.branches.list().get(name)
    return None if branch is None else int(branch["parent_version"])


@contextlib.contextmanager
def _object_store_environment(storage_options: Mapping[str, str]) -> Iterator[None]:
    """LanceDB 0.40's ``clone_table`` opens both tables without the connection's storage options
    (on S3 it then fails to resolve the bucket's region, or looks for credentials elsewhere), so
    the object store must find them in the environment: ``AWS_*`` as object_store reads them.
    On Lambda the environment already holds the region and the role's credentials, and no
    endpoint is set; offline (moto) this supplies the endpoint. Set for the clone only."""
    names = {
        key: key.upper() if key.startswith("aws_") else f"AWS_{key.upper()}"
        for key in storage_options
    }
    with _environment:
        saved = {name: os.environ.get(name) for name in names.values()}
        os.environ.update({names[key]: value for key, value in storage_options.items()})
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
