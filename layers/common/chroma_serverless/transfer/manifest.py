"""An export's table of contents, ``manifest.json``: each collection's Collection JSON (name,
metadata, configuration, schema, dimension) and file, so an import recreates them exactly. It is
written last: an export directory without one is incomplete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.wire import responses

if TYPE_CHECKING:
    from chroma_serverless.transfer.files import Location
    from chroma_serverless.types import Collection

NAME = "manifest.json"
FORMAT = "chroma-serverless-export"
VERSION = 1


@dataclass(frozen=True)
class Entry:
    collection: Collection
    file: str  # relative to the manifest
    records: int
    version: int | None  # the version exported, when read from storage


@dataclass(frozen=True)
class Manifest:
    tenant: str
    database: str
    exported_at: str
    entries: list[Entry]

    def entry(self, name: str) -> Entry:
        for entry in self.entries:
            if entry.collection.name == name:
                return entry
        raise InvalidArgumentError(f"The export holds no collection {name!r}")


def merged(earlier: Manifest, later: Manifest) -> Manifest:
    """``earlier``'s entries with those of the collections ``later`` exported again replaced
    (in place), and its new ones after them."""
    fresh = {e.collection.name: e for e in later.entries}
    entries = [fresh.pop(e.collection.name, e) for e in earlier.entries]
    entries += [e for e in later.entries if e.collection.name in fresh]
    return Manifest(later.tenant, later.database, later.exported_at, entries)


def write(directory: Location, manifest: Manifest) -> None:
    document = {
        "format": FORMAT,
        "version": VERSION,
        "tenant": manifest.tenant,
        "database": manifest.database,
        "exported_at": manifest.exported_at,
        "collections": [
            {
                **responses.collection(e.collection),
                "file": e.file,
                "records": e.records,
                "exported_version": e.version,
            }
            for e in manifest.entries
        ],
    }
    directory.child(NAME).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def read(directory: Location) -> Manifest:
    document: dict[str, Any] = orjson.loads(directory.child(NAME).read_bytes())
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise InvalidArgumentError(
            f"{directory.uri}/{NAME} is not a {FORMAT} manifest of version {VERSION}"
        )
    entries = [
        Entry(responses.collection_from(c), c["file"], c["records"], c.get("exported_version"))
        for c in document["collections"]
    ]
    return Manifest(document["tenant"], document["database"], document["exported_at"], entries)
