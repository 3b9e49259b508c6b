"""Configuration, read from the environment once and passed into constructors."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from chroma_serverless.types import IndexPolicy

if TYPE_CHECKING:
    from collections.abc import Mapping

PREFIX = "CHROMA_SERVERLESS_"
DEFAULT_MAX_BATCH_SIZE = 5461  # what Chroma's own server advertises
# AWS Lambda refuses synchronous invocations over 6 MB (the whole event, not just the body), so
# bodies are capped below it with room for the event envelope and JSON escaping.
LAMBDA_MAX_BODY_BYTES = 5_500_000
# Elsewhere a full batch of 5461 float-list embeddings of 1536 dimensions (~100 MB) still fits.
DEFAULT_MAX_BODY_BYTES = 128 * 1024 * 1024
# Budget per record when sizing batches in AWS mode: the embedding as base64 float32 plus this
# much for the id, document, uri and metadata.
RECORD_OVERHEAD_BYTES = 2048

# The in-memory snapshots take at most this share of the Lambda function's memory, elsewhere of
# the machine's (capped): LanceDB's caches, Arrow buffers in flight and Python need the rest.
LAMBDA_MEMORY_SHARE = 4
MACHINE_MEMORY_SHARE = 4
MACHINE_MEMORY_CAP_MB = 8192

Mode = Literal["embedded", "aws"]
LogFormat = Literal["text", "json"]


@dataclass(frozen=True)
class Settings:
    """Embedded mode keeps ``catalog.sqlite3`` and ``records/`` under ``path``; AWS mode uses
    the DynamoDB table ``catalog_table`` and the LanceDB root ``records_uri`` (``s3://...``)."""

    mode: Mode = "embedded"
    path: Path = Path("data")
    allow_reset: bool = False
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    catalog_table: str = ""
    records_uri: str = ""
    aws_endpoint: str | None = None  # moto's server offline; unset on AWS
    aws_region: str = "us-east-1"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    embedding_dimension: int = 384  # sizes max_batch_size in AWS mode
    auth: bool = False  # off in the embedded default, as in Chroma; on in the AWS stack
    admin_token: str | None = None  # bootstrap admin token (plaintext, from the environment)
    admin_token_secret: str | None = None  # ... or the Secrets Manager secret holding it
    cors_origins: tuple[str, ...] = ()
    maintenance: Literal["off", "background", "queue"] = "off"
    maintenance_queue_url: str | None = None
    index: IndexPolicy = IndexPolicy()
    # Text on stderr, or JSON lines with CloudWatch EMF metrics on stdout (as on Lambda).
    log_format: LogFormat = "text"
    log_level: str = "INFO"
    tracing: bool = False  # X-Ray subsegments, on Lambda only

    @property
    def catalog_path(self) -> Path:
        return self.path / "catalog.sqlite3"

    @property
    def records_root(self) -> str:
        return self.records_uri or str(self.path / "records")

    @property
    def batch_size(self) -> int:
        """``max_batch_size`` for pre-flight, capped so a batch fits ``max_body_bytes``."""
        if self.mode != "aws":
            return self.max_batch_size
        per_record = 4 * ((self.embedding_dimension * 4 + 2) // 3) + RECORD_OVERHEAD_BYTES
        return max(1, min(self.max_batch_size, self.max_body_bytes // per_record))

    def storage_options(self) -> dict[str, str]:
        """LanceDB object-store options; credentials come from the environment on AWS."""
        if not self.records_root.startswith("s3://"):
            return {}
        options = {"aws_region": self.aws_region}
        if self.aws_endpoint:
            options["aws_endpoint"] = self.aws_endpoint
            options["allow_http"] = str(self.aws_endpoint.startswith("http://")).lower()
        return options

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str = "") -> str:
            return env.get(PREFIX + name, default)

        mode = get("MODE", "embedded")
        if mode not in ("embedded", "aws"):
            raise ValueError(f"{PREFIX}MODE must be 'embedded' or 'aws', got {mode!r}")
        queue_url = get("MAINTENANCE_QUEUE_URL")
        maintenance = get("MAINTENANCE", "queue" if queue_url else "off")
        if maintenance not in ("off", "background", "queue"):
            raise ValueError(f"{PREFIX}MAINTENANCE must be off, background or queue")
        defaults = {f.name: f.default for f in dataclasses.fields(IndexPolicy)}
        lambda_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        if lambda_mb:
            defaults["memory_mb"] = max(16, int(lambda_mb) // LAMBDA_MEMORY_SHARE)
        else:
            share = min(_physical_memory_mb() // MACHINE_MEMORY_SHARE, MACHINE_MEMORY_CAP_MB)
            defaults["memory_mb"] = max(IndexPolicy().memory_mb, share)
        log_format = get("LOG_FORMAT", "text")
        if log_format not in ("text", "json"):
            raise ValueError(f"{PREFIX}LOG_FORMAT must be text or json, got {log_format!r}")
        # Powertools' rule for its Tracer (in Lambda, not under sam local, not disabled), and an
        # X-Ray daemon to send to (Lambda sets its address; emulators do not).
        traceable = bool(env.get("LAMBDA_TASK_ROOT") and env.get("AWS_XRAY_DAEMON_ADDRESS"))
        untraced = bool(env.get("AWS_SAM_LOCAL")) or _flag(env.get("POWERTOOLS_TRACE_DISABLED", ""))
        body_limit = get(
            "MAX_BODY_BYTES",
            str(LAMBDA_MAX_BODY_BYTES if mode == "aws" else DEFAULT_MAX_BODY_BYTES),
        )
        return cls(
            mode=mode,  # type: ignore[arg-type]
            path=Path(get("PATH", "data")),
            allow_reset=_flag(get("ALLOW_RESET", "false")),
            max_batch_size=int(get("MAX_BATCH_SIZE", str(DEFAULT_MAX_BATCH_SIZE))),
            catalog_table=get("CATALOG_TABLE"),
            records_uri=get("RECORDS_URI"),
            aws_endpoint=get("AWS_ENDPOINT") or None,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            max_body_bytes=int(body_limit),
            embedding_dimension=int(get("EMBEDDING_DIMENSION", "384")),
            auth=_flag(get("AUTH", "false")),
            admin_token=get("ADMIN_TOKEN") or None,
            admin_token_secret=get("ADMIN_TOKEN_SECRET") or None,
            cors_origins=tuple(o.strip() for o in get("CORS_ORIGINS").split(",") if o.strip()),
            maintenance=maintenance,  # type: ignore[arg-type]
            maintenance_queue_url=queue_url or None,
            index=IndexPolicy(
                **{
                    f.name: int(get("INDEX_" + f.name.upper(), str(defaults[f.name])))
                    for f in dataclasses.fields(IndexPolicy)
                }
            ),
            log_format=log_format,  # type: ignore[arg-type]
            log_level=get("LOG_LEVEL", "INFO"),
            tracing=traceable and not untraced,
        )


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _physical_memory_mb() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError, AttributeError):  # not on this platform
        return 0
