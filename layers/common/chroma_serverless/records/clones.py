"""Copy-on-write clones of a table: a fork's table is LanceDB's shallow clone of one version of
its source's table, pinned there by a tag.

A shallow clone writes a manifest (and a transaction file) of its own whose fragments point at
the source's data, deletion and index files; no data file is copied, so a fork costs the same
at any size. The fork then writes only its own files. The source's version cleanup keeps every
file of a tagged version, so the tag (``fork-<fork id>``) keeps the clone's files alive through
the source's compactions, until the fork lets go (:func:`unpin`). Facts measured on LanceDB 0.40
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


def pin_name(fork_id: str) -> str:
    return f"fork-{fork_id}"


def clone(
    db: Any,
    source: Any,
    fork_id: str,
    storage_options: Mapping[str, str],
    version: int | None = None,
) -> Any:
    """Pin the latest version of ``source`` (or exactly ``version``, a point-in-time restore)
    for ``fork_id`` and clone it as table ``fork_id``.

    The version is taken once and tagged before cloning, so the fork is a consistent snapshot
    even while others write to the source, and a cleanup racing the fork cannot remove it.
    """
    tag = pin_name(fork_id)
    for attempt in range(PIN_RETRIES):
        try:
            source.tags.create(tag, source.version if version is None else version)
            break
        except RuntimeError:  # that version was cleaned up meanwhile: pin the newest one
            if attempt == PIN_RETRIES - 1 or version is not None:
                raise
            source.checkout_latest()
    with _object_store_environment(storage_options):
        return db.clone_table(fork_id, source.uri, source_tag=tag)


def unpin(source: Any, fork_id: str) -> None:
    """Let the source's cleanup remove what only ``fork_id`` needed (a no-op if not pinned)."""
    with contextlib.suppress(RuntimeError):  # "Ref not found": never pinned, or already let go
        source.tags.delete(pin_name(fork_id))


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
