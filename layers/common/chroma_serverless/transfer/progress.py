"""Progress of a transfer on stderr: a bar with rate and ETA on a terminal (tqdm), plain lines
every few seconds otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from typing import TextIO

PLAIN_INTERVAL = 10.0  # seconds between plain lines


class Progress(Protocol):
    def update(self, records: int) -> None: ...

    def close(self) -> None: ...


def progress(
    description: str, total: int | None, done: int = 0, stream: TextIO | None = None
) -> Progress:
    """``done`` of ``total`` records (``None``: unknown) are already transferred (a resume)."""
    out = stream or sys.stderr
    if out.isatty():
        from tqdm import tqdm

        bar: Any = tqdm(
            total=total,
            initial=done,
            desc=description,
            unit=" records",
            unit_scale=True,
            file=out,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        return bar  # type: ignore[no-any-return]
    return PlainProgress(description, total, done, out)


class PlainProgress:
    def __init__(self, description: str, total: int | None, done: int, stream: TextIO) -> None:
        self.description, self.total, self.done, self.stream = description, total, done, stream
        self.initial = done
        self.started = self.last = time.monotonic()

    def update(self, records: int) -> None:
        self.done += records
        if time.monotonic() - self.last >= PLAIN_INTERVAL:
            self._line()

    def close(self) -> None:
        self._line()

    def _line(self) -> None:
        self.last = time.monotonic()
        elapsed = max(self.last - self.started, 1e-9)
        rate = (self.done - self.initial) / elapsed
        line = f"{self.description}: {self.done:,}"
        if self.total:
            line += f"/{self.total:,} records ({100 * self.done / self.total:.0f}%)"
        else:
            line += " records"
        line += f", {rate:,.0f} records/s"
        if self.total and rate > 0 and self.done < self.total:
            line += f", ETA {(self.total - self.done) / rate:,.0f} s"
        print(line, file=self.stream, flush=True)
