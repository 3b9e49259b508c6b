"""The documentation stays inside the repository: README.md and docs/*.md link only to files of
this tree (and to headings that exist), never to the web or above the repository root, and the
README stays a page one."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

# The repository root, wherever under tests/ this module lives.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README_MAX_LINES = 150

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
# [text](target "title") and ![alt](target); the target may be <bracketed>.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+[^)]*)?\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
HTML_TARGET = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.I)
AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^\s<>]*)>")
BARE_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()]+", re.I)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.M)
DOTDOT = re.compile(r"(?:^|[\s`'\"(=])\.\./")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def without_code(text: str) -> str:
    """The text with fenced blocks and code spans blanked: links there are not links."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)


def link_targets(text: str) -> list[str]:
    prose = without_code(text)
    targets = [m.group(1) for m in INLINE_LINK.finditer(prose)]
    targets += [m.group(1) for m in REFERENCE_DEFINITION.finditer(prose)]
    targets += [m.group(1) for m in HTML_TARGET.finditer(prose)]
    targets += [m.group(1) for m in AUTOLINK.finditer(prose)]
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in targets]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: inline markup and punctuation dropped, lower case, spaces
    to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result: set[str] = set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def problems(path: Path) -> list[str]:
    """Every link or image of ``path`` that leaves the tree, names no file, or no heading."""
    found: list[str] = []
    for target in link_targets(path.read_text(encoding="utf-8")):
        if not target:
            found.append("empty link target")
            continue
        if SCHEME.match(target) or target.startswith("//"):
            found.append(f"{target}: a link out of the repository")
            continue
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not resolved.is_relative_to(ROOT):
            found.append(f"{target}: above the repository root")
        elif not resolved.exists():
            found.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            found.append(f"{target}: no heading #{fragment} in {resolved.relative_to(ROOT)}")
    return found


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository_and_resolve(path: Path) -> None:
    assert problems(path) == []


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_web_urls_or_paths_above_the_repository(path: Path) -> None:
    """Bare URLs become links when rendered, and a ``../`` path in prose or code names a file a
    clone does not have (paths in the docs are relative to the repository root)."""
    text = path.read_text(encoding="utf-8")
    outside_links = INLINE_LINK.sub("", without_code(text))
    assert BARE_URL.findall(outside_links) == []
    code = [m.group(0) for m in FENCE.finditer(text)]
    code += [m.group(0) for m in CODE_SPAN.finditer(FENCE.sub("", text))]
    lines = (outside_links + "\n" + "\n".join(code)).splitlines()
    assert [line.strip() for line in lines if DOTDOT.search(line)] == []


def test_readme_is_a_page_one() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_the_checks_catch_what_they_should(tmp_path: Path) -> None:
    """The parser itself: links in code are ignored, anchors follow GitHub's slugs."""
    assert slug("Offline: `--aws-local`") == "offline---aws-local"
    assert slug("At 1M × 384") == "at-1m--384"
    sample = (
        '[a](docs/x.md) ![b](<img.png> "t") `[c](nowhere)`\n'
        "```\n[d](also-nowhere)\n```\n[e]: ../up.md\n<https://example.com>\n"
    )
    assert link_targets(sample) == ["docs/x.md", "img.png", "../up.md", "https://example.com"]
