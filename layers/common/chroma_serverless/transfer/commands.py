"""The ``import``, ``export`` and ``restore`` commands of ``chroma-serverless``.

Each works on storage directly (the embedded data directory, ``--path``; or, with
``CHROMA_SERVERLESS_MODE=aws``, the AWS stack's table and bucket) or, with ``--url``, on any
running endpoint through its HTTP API with a token (``--token`` or ``CHROMA_SERVERLESS_TOKEN``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chroma_serverless.types import DEFAULT_DATABASE, DEFAULT_TENANT

if TYPE_CHECKING:
    import argparse

    from chroma_serverless.settings import Settings
    from chroma_serverless.transfer.endpoints import Endpoint

TOKEN_ENV = "CHROMA_SERVERLESS_TOKEN"
STATE_DIR = Path("~/.cache/chroma-serverless/imports")


def add_parsers(commands: Any) -> None:
    """Add the three commands to ``chroma-serverless``'s subcommands."""
    imports = commands.add_parser(
        "import",
        help="load a collection from Parquet, JSONL or CSV files (a path or s3://), resumable",
    )
    imports.add_argument(
        "source",
        help="a file, a directory of files (one collection), or an export directory "
        "(manifest.json: every collection in it)",
    )
    imports.add_argument("--collection", help="collection name (from an export: which one)")
    imports.add_argument("--format", choices=("parquet", "jsonl", "csv"))
    for column in ("id", "embedding", "document", "uri"):
        imports.add_argument(f"--{column}", metavar="COLUMN", help=f"the {column} column")
    imports.add_argument(
        "--metadata", metavar="COLUMN", help="a column of whole metadata (struct, map, JSON text)"
    )
    imports.add_argument(
        "--metadata-columns",
        metavar="A,B",
        help="plain columns to keep as metadata keys (default: every column not mapped above, "
        "unless there is a metadata column)",
    )
    imports.add_argument(
        "--collection-metadata", metavar="JSON", help="metadata of a collection created"
    )
    imports.add_argument("--batch-size", type=int, default=20_000, help="records per write")
    imports.add_argument(
        "--state-dir", type=Path, default=STATE_DIR, help="where checkpoints are kept"
    )
    imports.add_argument("--restart", action="store_true", help="ignore a saved checkpoint")
    imports.add_argument(
        "--no-maintain", action="store_true", help="skip indexing and compaction after the load"
    )
    _target(imports)

    exports = commands.add_parser(
        "export",
        help="write collections to Parquet or JSONL files plus manifest.json, into a new or "
        "empty directory, or into an earlier export of the same database (merged: its other "
        "collections stay, a collection exported again replaces its entry)",
    )
    exports.add_argument(
        "destination",
        help="a directory (a path or s3://): new, empty, or an earlier export of the database; "
        "any other directory is refused",
    )
    exports.add_argument(
        "--collection", action="append", help="a collection (repeatable; default: all)"
    )
    exports.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    exports.add_argument(
        "--as-of", metavar="VERSION|TIME", help="export an earlier version (storage only)"
    )
    _target(exports)

    restores = commands.add_parser(
        "restore",
        help="list a collection's restorable versions, or restore it to one (in place or as a "
        "new collection)",
    )
    restores.add_argument("collection")
    action = restores.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="list the versions kept")
    action.add_argument(
        "--to", metavar="VERSION|TIME", help="a version, or an ISO-8601 time (UTC by default)"
    )
    restores.add_argument("--as", dest="new_name", metavar="NAME", help="restore as a new one")
    _target(restores)


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", type=Path, help="embedded data directory (default ./data)")
    parser.add_argument("--tenant", default=DEFAULT_TENANT)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--url", help="a running server instead of storage (its HTTP API)")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV), help=f"or ${TOKEN_ENV}")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run the command; its errors are reported by ``cli.main``."""
    commands = {"import": _import, "export": _export, "restore": _restore}
    commands[args.command](settings, args)
    return 0


def _endpoint(settings: Settings, args: argparse.Namespace) -> Endpoint:
    if args.url:
        from chroma_serverless.transfer.http import HttpEndpoint

        return HttpEndpoint(args.url, args.token, args.tenant, args.database)
    from chroma_serverless import wiring
    from chroma_serverless.transfer.endpoints import StorageEndpoint

    service = wiring.build_service(settings.replace(maintenance="off"))
    return StorageEndpoint(service, wiring.identity(settings), args.tenant, args.database)


def _import(settings: Settings, args: argparse.Namespace) -> None:
    from chroma_serverless.errors import InvalidArgumentError
    from chroma_serverless.transfer import files, manifest
    from chroma_serverless.transfer.columns import ColumnMap
    from chroma_serverless.transfer.importer import ImportJob, import_files
    from chroma_serverless.types import Collection

    source = files.locate(args.source, settings)  # the files first: a wrong path fails fast
    jobs = []
    if source.child(manifest.NAME).exists():
        contents = manifest.read(source)
        entries = [contents.entry(args.collection)] if args.collection else contents.entries
        for entry in entries:
            found = files.source_files(source.child(entry.file))
            jobs.append(
                ImportJob(
                    found, entry.collection.name, ColumnMap(), entry.collection, args.batch_size
                )
            )
    else:
        if not args.collection:
            raise InvalidArgumentError("Name the collection to import into: --collection NAME")
        keys = None
        if args.metadata_columns is not None:
            keys = tuple(k.strip() for k in args.metadata_columns.split(",") if k.strip())
        columns = ColumnMap(args.id, args.embedding, args.document, args.uri, args.metadata, keys)
        like = None
        if args.collection_metadata:
            try:
                metadata = json.loads(args.collection_metadata)
            except ValueError as exc:
                raise InvalidArgumentError(f"--collection-metadata is not JSON: {exc}") from exc
            like = Collection("", args.collection, "", "", metadata, {})
        found = files.source_files(source, args.format)
        jobs.append(ImportJob(found, args.collection, columns, like, args.batch_size))
    endpoint = _endpoint(settings, args)
    for job in jobs:
        report = import_files(
            job, endpoint, args.state_dir.expanduser(), args.restart, not args.no_maintain
        )
        print(json.dumps(asdict(report)), flush=True)


def _export(settings: Settings, args: argparse.Namespace) -> None:
    from chroma_serverless.transfer import files
    from chroma_serverless.transfer.exporter import export

    endpoint = _endpoint(settings, args)
    destination = files.locate(args.destination, settings)
    done = export(endpoint, destination, args.collection, args.format, args.as_of)
    for entry in done.entries:
        print(
            json.dumps(
                {"collection": entry.collection.name, "file": entry.file, "records": entry.records}
            )
        )


def _restore(settings: Settings, args: argparse.Namespace) -> None:
    from chroma_serverless.wire import responses

    endpoint = _endpoint(settings, args)
    collection = endpoint.collection(args.collection)
    if args.list:
        for point in endpoint.restore_points(collection):
            print(json.dumps(responses.restore_point(point)))
        return
    restored = endpoint.restore(collection, args.to, args.new_name)
    done = responses.restore_point(restored.source)
    where = restored.collection.name
    summary = {"collection": where, "id": restored.collection.id, "restored": done}
    print(json.dumps({**summary, "previous": restored.previous}))
    if restored.previous is not None:
        print(
            f"to undo: chroma-serverless restore {where} --to {restored.previous}", file=sys.stderr
        )
