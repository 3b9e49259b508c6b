"""Transfer files on a local disk or S3 (``s3://bucket/key``), through pyarrow's filesystems, and
the formats their names imply."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow.fs as pafs

from chroma_serverless.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    from chroma_serverless.settings import Settings

Format = Literal["parquet", "jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("parquet", "jsonl", "csv")
EXTENSIONS: dict[str, Format] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")  # text formats only; pyarrow detects the codec


@dataclass(frozen=True)
class Location:
    """A file or directory: ``uri`` as the user wrote it, ``path`` as its filesystem names it."""

    filesystem: pafs.FileSystem
    path: str
    uri: str

    def child(self, name: str) -> Location:
        return Location(
            self.filesystem, posixpath.join(self.path, name), self.uri.rstrip("/") + "/" + name
        )

    def info(self) -> pafs.FileInfo:
        return self.filesystem.get_file_info(self.path)

    def exists(self) -> bool:
        return bool(self.info().type != pafs.FileType.NotFound)

    def open_random(self) -> Any:
        return self.filesystem.open_input_file(self.path)

    def open_stream(self) -> Any:
        """Sequential reads, decompressed when the name says so."""
        return self.filesystem.open_input_stream(self.path, compression="detect")

    def open_output(self) -> Any:
        return self.filesystem.open_output_stream(self.path)

    def is_empty(self) -> bool:
        """Whether a directory (or S3 prefix) holds nothing."""
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=False)
        return not self.filesystem.get_file_info(selector)

    def delete(self) -> None:
        self.filesystem.delete_file(self.path)

    def make_directory(self) -> None:
        self.filesystem.create_dir(self.path, recursive=True)

    def read_bytes(self) -> bytes:
        with self.open_stream() as stream:
            return bytes(stream.read())

    def write_bytes(self, data: bytes) -> None:
        with self.open_output() as stream:
            stream.write(data)


def locate(uri: str, settings: Settings) -> Location:
    """A local path, or ``s3://bucket/key`` (region and endpoint as for the records bucket;
    credentials from the environment, as for boto3)."""
    if uri.startswith("s3://"):
        endpoint = settings.aws_endpoint
        filesystem = pafs.S3FileSystem(
            region=settings.aws_region,
            endpoint_override=endpoint.split("://", 1)[1] if endpoint else None,
            scheme=endpoint.split("://", 1)[0] if endpoint else "https",
        )
        return Location(filesystem, uri.removeprefix("s3://").rstrip("/"), uri)
    return Location(pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve()), uri)


@dataclass(frozen=True)
class SourceFile:
    """One input file, with what identifies its content for a checkpoint."""

    location: Location
    format: Format
    size: int
    modified: str

    @property
    def fingerprint(self) -> dict[str, Any]:
        return {"uri": self.location.uri, "size": self.size, "modified": self.modified}


def source_files(location: Location, format: Format | None = None) -> list[SourceFile]:
    """The file at ``location``, or every file of a known format under a directory (or S3
    prefix), in name order."""
    info = location.info()
    if info.type == pafs.FileType.NotFound:
        raise NotFoundError(f"No such file or directory: {location.uri}")
    if info.type == pafs.FileType.File:
        return [_source(location, info, format or format_of(location.path))]
    selector = pafs.FileSelector(location.path, recursive=True)
    found = [
        _source(Location(location.filesystem, i.path, _child_uri(location, i.path)), i, kind)
        for i in sorted(location.filesystem.get_file_info(selector), key=lambda i: i.path)
        if i.type == pafs.FileType.File
        and (kind := format or _known_format(i.path)) is not None
        and not posixpath.basename(i.path).startswith((".", "_"))
    ]
    if not found:
        raise NotFoundError(f"No Parquet, JSONL or CSV files under {location.uri}")
    return found


def format_of(path: str) -> Format:
    kind = _known_format(path)
    if kind is None:
        raise InvalidArgumentError(
            f"Cannot tell the format of {path} from its name: use .parquet, .jsonl or .csv "
            "(optionally compressed: .jsonl.gz, .csv.zst), or pass --format"
        )
    return kind


def _known_format(path: str) -> Format | None:
    name = posixpath.basename(path).lower()
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    kind = EXTENSIONS.get(posixpath.splitext(name)[1])
    if kind == "parquet" and name != posixpath.basename(path).lower():
        return None  # Parquet compresses inside the file
    return kind


def _source(location: Location, info: pafs.FileInfo, format: Format) -> SourceFile:
    modified = info.mtime.isoformat() if info.mtime is not None else ""
    return SourceFile(location, format, int(info.size), modified)


def _child_uri(parent: Location, path: str) -> str:
    relative = posixpath.relpath(path, parent.path)
    return parent.uri.rstrip("/") + "/" + relative
