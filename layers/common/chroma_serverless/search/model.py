"""The Search API's values: a search (filter, rank, group, page, select) and what it found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chroma_serverless.domain.filters import DOCUMENT_KEY, ID_KEY
from chroma_serverless.types import Filter

if TYPE_CHECKING:
    from chroma_serverless.search import grouping, ranking
    from chroma_serverless.types import Include, Metadata, Vectors

EMBEDDING_KEY = "#embedding"
METADATA_KEY = "#metadata"
SCORE_KEY = "#score"
SPECIAL_KEYS = (DOCUMENT_KEY, EMBEDDING_KEY, METADATA_KEY, SCORE_KEY, ID_KEY)
FIELDS = ("filter", "rank", "group_by", "limit", "select")


@dataclass(frozen=True)
class Select:
    keys: tuple[str, ...]  # as sent, without repeats

    @property
    def fields(self) -> frozenset[str]:
        """The metadata keys selected one by one."""
        return frozenset(k for k in self.keys if k not in SPECIAL_KEYS)

    @property
    def include(self) -> tuple[Include, ...]:
        """What the store must read for the selected keys."""
        include: list[Include] = []
        if DOCUMENT_KEY in self.keys:
            include.append("documents")
        if EMBEDDING_KEY in self.keys:
            include.append("embeddings")
        if METADATA_KEY in self.keys or self.fields:
            include.append("metadatas")
        return tuple(include)

    def metadata(self, metadata: Metadata | None) -> Metadata | None:
        """The selected part of a record's metadata (``None`` when it has none of it)."""
        if metadata is None or METADATA_KEY in self.keys:
            return metadata
        kept = {k: v for k, v in metadata.items() if k in self.fields}
        return kept or None


@dataclass(frozen=True)
class Search:
    filter: Filter = field(default_factory=Filter)
    rank: ranking.Rank | None = None
    group_by: grouping.GroupBy | None = None
    offset: int = 0
    limit: int | None = None
    select: Select = field(default_factory=lambda: Select(()))


@dataclass
class Found:
    """One search's records, in order, with the selected columns (``None``: not selected)."""

    select: tuple[str, ...]
    ids: list[str]
    documents: list[str | None] | None = None
    embeddings: Vectors | list[None] | None = None  # [n, d], or nulls when not fetched
    metadatas: list[Metadata | None] | None = None
    scores: list[float | None] | None = None
