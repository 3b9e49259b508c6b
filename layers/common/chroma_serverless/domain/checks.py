"""Value checks shared by every route: tenant, database and collection names, counts (limit,
offset, n_results) and unique ids."""

from __future__ import annotations

import re

from chroma_serverless.errors import DuplicateIDError, InvalidArgumentError

# Chroma's rule for collection and database names; tenants need only 3 characters there.
NAME_RULE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]\Z")
MAX_TENANT = 256
# Chroma's server reads limit, offset and n_results as u32; larger values are bad input here
# too (and would overflow SQLite's and Arrow's integers further down).
MAX_COUNT = 2**32 - 1


def database_name(name: str) -> str:
    """Chroma's rule: 3-512 characters from [a-zA-Z0-9._-], starting and ending with a letter
    or digit. ``..`` is refused as well: names never become paths, but stay safe if they did."""
    return _chroma_name(name, "")


def collection_name(name: object) -> str:
    """The database rule, worded as Chroma's server words it for collections."""
    return _chroma_name(name, "Validation error: name: ")


def _chroma_name(name: object, prefix: str) -> str:
    if not isinstance(name, str) or not NAME_RULE.match(name) or ".." in name:
        raise InvalidArgumentError(
            f"{prefix}Expected a name containing 3-512 characters from [a-zA-Z0-9._-], "
            f"starting and ending with a character in [a-zA-Z0-9]. Got: {name}"
        )
    return name


def tenant_name(name: str) -> str:
    """At least 3 characters as on Chroma's server, and kept to what is safe in any path, key
    or log line: printable, at most 256, no ``/``, ``\\`` or ``#``, no surrounding spaces."""
    if (
        not MAX_TENANT >= len(name) >= 3
        or name.strip(".") == ""
        or name != name.strip()
        or any(c in name for c in "/\\#")
        or not name.isprintable()
    ):
        raise InvalidArgumentError(
            f"Expected tenant name to be 3-{MAX_TENANT} printable characters without '/', '\\' "
            f"or '#', not only dots and without surrounding spaces. Got: {name!r}"
        )
    return name


def count(value: int | None, what: str, minimum: int = 0) -> int | None:
    """``value`` if it is ``None`` or within ``minimum..MAX_COUNT``."""
    if value is not None and not minimum <= value <= MAX_COUNT:
        raise InvalidArgumentError(
            f"Expected {what} to be an int between {minimum} and {MAX_COUNT}, got {value}"
        )
    return value


def page(limit: int | None, offset: int | None) -> tuple[int | None, int]:
    """A list route's ``limit`` (``None``: all) and ``offset`` (``None``: 0)."""
    return count(limit, "limit"), count(offset, "offset") or 0


def check_unique(ids: list[str]) -> None:
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        duplicates = sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
        raise DuplicateIDError(
            f"Expected IDs to be unique, found duplicates of: {', '.join(duplicates[:10])}"
        )
