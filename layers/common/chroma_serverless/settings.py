"""Configuration, read from the environment once and passed into constructors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

PREFIX = "CHROMA_SERVERLESS_"
DEFAULT_MAX_BATCH_SIZE = 5461  # what Chroma's own server advertises


@dataclass(frozen=True)
class Settings:
    """``path`` holds the embedded catalog (``catalog.sqlite3``) and records (``records/``)."""

    path: Path = Path("data")
    allow_reset: bool = False
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE

    @property
    def catalog_path(self) -> Path:
        return self.path / "catalog.sqlite3"

    @property
    def records_uri(self) -> str:
        return str(self.path / "records")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            path=Path(env.get(PREFIX + "PATH", str(cls.path))),
            allow_reset=_flag(env.get(PREFIX + "ALLOW_RESET", "false")),
            max_batch_size=int(env.get(PREFIX + "MAX_BATCH_SIZE", DEFAULT_MAX_BATCH_SIZE)),
        )


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")
