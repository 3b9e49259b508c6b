"""The vocabulary shared by every layer: metadata, filters, collections and record requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from datetime import datetime

MetadataScalar = str | int | float | bool


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector metadata value (Chroma's ``{"#type": "sparse_vector", ...}``): term ids
    in strictly ascending order, one weight per term, and optionally the term's text."""

    indices: tuple[int, ...]
    values: tuple[float, ...]
    tokens: tuple[str, ...] | None = None


MetadataValue = MetadataScalar | list[str] | list[int] | list[float] | list[bool] | SparseVector
Metadata = dict[str, MetadataValue]
# On update/upsert a ``None`` value removes the key.
UpdateMetadata = dict[str, MetadataValue | None]

Where = dict[str, Any]
WhereDocument = dict[str, Any]

Include = Literal["documents", "embeddings", "metadatas", "distances", "uris"]
Space = Literal["l2", "cosine", "ip"]
SPACES: tuple[Space, ...] = ("l2", "cosine", "ip")

Vectors = npt.NDArray[np.float32]


DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"

# The control plane (system, tenants, databases, collections) needs only the catalog and runs in
# a small zip function; every route that touches records (including deletes that drop them) is
# data plane and runs in the container image with LanceDB.
Plane = Literal["control", "data"]
PLANES: tuple[Plane, ...] = ("control", "data")

Role = Literal["admin", "writer", "reader"]
ROLES: tuple[Role, ...] = ("admin", "writer", "reader")
ANY = "*"  # a principal's tenant or database wildcard


@dataclass(frozen=True)
class Principal:
    """Who a token acts for: one tenant (or ``*``), some databases (or ``*``) and a role."""

    user_id: str
    tenant: str
    databases: tuple[str, ...]
    role: Role


@dataclass(frozen=True)
class Token:
    """A stored API token: only the SHA-256 of the secret is kept; ``id`` is a public handle."""

    id: str
    hash: str
    principal: Principal
    created_at: str


@dataclass(frozen=True)
class BasicCredential:
    """A stored HTTP Basic user: the username is unique and is the principal's user id; only a
    salted scrypt hash of the password is kept (``auth/passwords.py`` encodes it with its
    parameters)."""

    username: str
    password_hash: str
    principal: Principal
    created_at: str


@dataclass(frozen=True)
class IndexPolicy:
    """When a collection gets its ANN index and how queries use it (chosen by measurement:
    bench/index_sweep.py; docs/indexing.md)."""

    threshold: int = 20_000  # rows before an IVF-PQ index is built; below, search is exact
    sub_vector_dims: int = 1  # dimensions per PQ sub-vector (num_sub_vectors = dim / this)
    num_bits: int = 4  # bits per PQ code: 4-bit codes build 10-30x faster at equal recall
    rows_per_partition: int = 4096  # IVF partitions = rows / this
    sample_rate: int = 64  # k-means training samples per centroid (IVF and PQ)
    max_iterations: int = 20  # k-means iterations
    # partitions probed at least, at Chroma's default ef_search (100): 16 of the 24 at 100k rows
    # (recall@10 0.996 low-rank, 0.999 clustered; 20 gave 1.000) reads 2/3 of the PQ codes cold
    nprobes: int = 16
    probe_percent: int = 25  # ... and at least this share of the partitions
    refine_factor: int = 5  # candidates re-ranked with full vectors: k * refine_factor
    exact_filter_rows: int = 2_000  # filters matching at most this many rows search exactly
    # Replaced versions are kept this long: for readers still on them, and as the window of
    # point-in-time restore (service/restore.py). Their files cost storage meanwhile
    # (docs/forks-and-restore.md).
    retention_seconds: int = 7 * 24 * 3600
    fragment_target: int = 8  # compact when a table has more fragments than this
    memory_rows: int = 10_000  # tables up to this many rows are read into memory on first use
    memory_mb: int = 256  # larger ones in the background, while all snapshots fit in this
    memory_probe_percent: int = 25  # share of an in-memory partitioning a query scans


@dataclass(frozen=True)
class LogState:
    """Where a collection's write log stands: ``head`` is the last sequence number given to an
    entry, ``folded`` the last one whose entry is in the records table, and ``version`` the
    table version that holds exactly the entries up to ``folded`` (``None`` before the first
    fold: the table's latest). Entries ``folded + 1 .. head`` are the tail."""

    head: int = 0
    folded: int = 0
    version: int | None = None

    @property
    def tail(self) -> int:
        return self.head - self.folded


@dataclass(frozen=True)
class Tenant:
    name: str


@dataclass(frozen=True)
class Database:
    id: str
    name: str
    tenant: str


@dataclass(frozen=True)
class Collection:
    id: str
    name: str
    tenant: str
    database: str
    metadata: Metadata | None
    configuration: dict[str, Any]
    dimension: int | None = None
    # Chroma's index layout (domain/schema/indexes.py); kept in agreement with ``configuration``.
    schema: dict[str, Any] | None = None

    def updated(
        self,
        name: str | None = None,
        metadata: Metadata | None = None,
        configuration: dict[str, Any] | None = None,
        schema: dict[str, Any] | None = None,
    ) -> Collection:
        """This collection with the fields given replaced (``None`` keeps the current value),
        as every catalog applies an update."""
        return Collection(
            id=self.id,
            name=self.name if name is None else name,
            tenant=self.tenant,
            database=self.database,
            metadata=self.metadata if metadata is None else metadata,
            configuration=self.configuration if configuration is None else configuration,
            dimension=self.dimension,
            schema=self.schema if schema is None else schema,
        )

    @property
    def hnsw(self) -> dict[str, Any]:
        """Chroma's HNSW parameters (``configuration["hnsw"]``), or none."""
        hnsw = self.configuration.get("hnsw")
        return hnsw if isinstance(hnsw, dict) else {}

    @property
    def ef_search(self) -> int:
        """How hard an approximate search looks: Chroma's ``hnsw.ef_search`` (default 100)."""
        return int(self.hnsw.get("ef_search", 100))

    @property
    def space(self) -> Space:
        """Distance space: configuration (hnsw, spann), then ``hnsw:space`` metadata, then l2."""
        for index in ("hnsw", "spann"):
            settings = self.configuration.get(index)
            if isinstance(settings, dict) and settings.get("space") in SPACES:
                return settings["space"]  # type: ignore[no-any-return]
        legacy = (self.metadata or {}).get("hnsw:space")
        return legacy if legacy in SPACES else "l2"


@dataclass(frozen=True)
class RecordBatch:
    """Validated columns of an add/update/upsert; optional columns are ``None`` when not sent."""

    ids: list[str]
    embeddings: Vectors | None = None
    metadatas: list[UpdateMetadata | None] | None = None
    documents: list[str | None] | None = None
    uris: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Filter:
    ids: list[str] | None = None
    where: Where | None = None
    where_document: WhereDocument | None = None


@dataclass(frozen=True)
class GetRequest:
    filter: Filter = field(default_factory=Filter)
    limit: int | None = None
    offset: int = 0
    include: tuple[Include, ...] = ("documents", "metadatas")


@dataclass(frozen=True)
class QueryRequest:
    embeddings: Vectors
    n_results: int = 10
    filter: Filter = field(default_factory=Filter)
    include: tuple[Include, ...] = ("documents", "metadatas", "distances")
    texts: list[str] | None = None  # to embed on the server, instead of ``embeddings``


@dataclass(frozen=True)
class DeleteRequest:
    filter: Filter
    limit: int | None = None


@dataclass
class GetResult:
    """Records as columns (``None``: not included); ``embeddings`` is one ``[n, d]`` array."""

    ids: list[str]
    embeddings: Vectors | None = None
    documents: list[str | None] | None = None
    uris: list[str | None] | None = None
    metadatas: list[Metadata | None] | None = None


@dataclass
class QueryResult:
    """One column per included field, each with one entry per query vector (``embeddings``:
    one ``[k, d]`` array per query)."""

    ids: list[list[str]]
    distances: list[list[float]] | None = None
    embeddings: list[Vectors] | None = None
    documents: list[list[str | None]] | None = None
    uris: list[list[str | None]] | None = None
    metadatas: list[list[Metadata | None]] | None = None


@dataclass(frozen=True)
class RestorePoint:
    """A version of a collection's records that it can be restored to (or exported at)."""

    version: int
    timestamp: datetime  # when the version was committed, in UTC
    records: int
    made_by: str | None = None  # what committed it, in plain words (None: unknown)


@dataclass(frozen=True)
class Restored:
    """What a restore did: the restored collection (the same one, or a new one), the version
    whose records it now holds, and, in place, the latest version before (to undo it with)."""

    collection: Collection
    source: RestorePoint
    previous: int | None
