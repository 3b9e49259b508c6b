"""Log lines: every ``chroma_serverless`` logger as text (the local default, on stderr) or as
Powertools' JSON (on stdout, as on Lambda), each line carrying the keys of the unit of work it
belongs to."""

from __future__ import annotations

import logging
import sys

from chroma_serverless.observe import context

LOGGER = "chroma_serverless"


def bound_keys(record: logging.LogRecord) -> bool:
    """The current unit's keys on ``record`` (a handler filter: every line gets them)."""
    unit = context.current()
    if unit is not None:
        for key, value in unit.keys.items():
            if not hasattr(record, key):
                setattr(record, key, value)
    return True


class Console(logging.Handler):
    """Writes to ``sys.stdout``/``sys.stderr`` as they are when a line is written (so a
    replaced stream, such as a test's capture, gets it)."""

    def __init__(self, stream: str) -> None:
        super().__init__()
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = getattr(sys, self._stream)
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class Text(logging.Formatter):
    """``time LEVEL logger: message [key=value ...]`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = [f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD]
        if not extra:
            return line
        first, newline, rest = line.partition("\n")  # keys before any traceback
        return f"{first} [{' '.join(extra)}]{newline}{rest}"
