"""Where the tests find the repository and their own files, wherever a module lives."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent  # the repository root
DATA = TESTS / "data"
EVENTS = TESTS / "events"
FUNCTIONS = ROOT / "functions"
PACKAGE = ROOT / "layers" / "common" / "chroma_serverless"
