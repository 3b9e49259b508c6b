"""The package's floor plan, enforced: which rooms may import which (docs/architecture.md).

Every import counts, at module level, inside functions and under ``TYPE_CHECKING``: a rule
broken only for type checking is still a reader who must know the other room.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.support.paths import FUNCTIONS, PACKAGE

if TYPE_CHECKING:
    from pathlib import Path

MAX_LINES = 450

LEAVES = {"errors", "types"}
# room -> the rooms of the package it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "types": set(),
    "domain": LEAVES,
    "search": LEAVES | {"domain"},
    "ports": LEAVES | {"domain"},
}
# room -> rooms it must never import
FORBIDDEN: dict[str, set[str]] = {
    "service": {"catalog", "records", "wire", "http", "wiring", "transfer", "cli"},
    "catalog": {"records", "service", "search", "wire", "http", "wiring", "transfer", "cli"},
    "records": {"catalog", "service", "search", "wire", "http", "wiring", "transfer", "cli"},
    "embedding": {"catalog", "records", "service", "wire", "http", "wiring"},
    "auth": {"catalog", "records", "service", "wire", "http", "wiring"},
    "observe": {"catalog", "records", "service", "wire", "http", "wiring"},
    "wire": {"catalog", "records", "service", "http", "wiring"},
    "http": {"catalog", "records"},
    "wiring": {"http", "wire", "transfer", "cli"},
}
# third-party package -> the only rooms that may import it
THIRD_PARTY: dict[str, set[str]] = {
    "lancedb": {"records"},
    "fastapi": {"http"},
    "fastapi_offline": {"http"},
    "starlette": {"http"},
    "pydantic": {"wire"},
    "pydantic_core": {"wire"},
    "mangum": set(),  # only the Lambda entry points under functions/
    "uvicorn": {"cli"},
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted, without the package prefix
    target: str  # what it imports, dotted (a module of the package, or a third-party name)
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str:
    """The package module ``name`` (``a.b.C`` may name ``C`` in module ``a.b``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or "__init__"


def imports_of(path: Path, known: dict[str, Path]) -> list[Import]:
    source = module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.level == 0, f"{path}: relative import"
            if node.module == "chroma_serverless" or node.module.startswith("chroma_serverless."):
                inner = node.module.removeprefix("chroma_serverless").lstrip(".")
                for alias in node.names:
                    target = resolve(f"{inner}.{alias.name}".lstrip("."), known)
                    found.append(Import(source, target, node.lineno))
            else:
                found.append(Import(source, node.module, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("chroma_serverless."):
                    inner = alias.name.removeprefix("chroma_serverless.")
                    found.append(Import(source, resolve(inner, known), node.lineno))
                else:
                    found.append(Import(source, alias.name, node.lineno))
    return found


def room(module: str) -> str:
    return module.split(".")[0]


def package_imports() -> list[Import]:
    known = modules()
    return [i for path in known.values() for i in imports_of(path, known) if i.target in known]


def third_party_imports() -> list[Import]:
    known = modules()
    return [i for path in known.values() for i in imports_of(path, known) if i.target not in known]


def test_each_room_imports_only_what_its_rules_allow() -> None:
    broken = []
    for found in package_imports():
        source, target = room(found.source), room(found.target)
        if source == target or target == "__init__":
            continue
        allowed = ALLOWED.get(source)
        if (allowed is not None and target not in allowed) or target in FORBIDDEN.get(source, ()):
            broken.append(f"{found.source}:{found.line} imports {found.target}")
    assert broken == []


@pytest.mark.parametrize("package", sorted(THIRD_PARTY))
def test_a_third_party_package_is_imported_only_in_its_room(package: str) -> None:
    where = {
        f"{i.source}:{i.line}"
        for i in third_party_imports()
        if i.target.split(".")[0] == package and room(i.source) not in THIRD_PARTY[package]
    }
    assert where == set()


def test_mangum_is_imported_only_by_the_lambda_entry_points() -> None:
    entry_points = sorted(FUNCTIONS.glob("*/app.py"))
    assert [p.parent.name for p in entry_points] == ["control", "data", "maintenance"]
    assert all("from mangum import" not in p.read_text() for p in PACKAGE.rglob("*.py"))
    assert all("from mangum import" in p.read_text() for p in entry_points[:2])


def test_no_import_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for found in package_imports():
        if found.target != found.source:
            graph.setdefault(found.source, set()).add(found.target)
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert cycles == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in strongly_connected(graph) if len(c) > 1] == [["a", "b", "c"]]


def test_only_wiring_reads_the_mode() -> None:
    readers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "mode":
                readers.append(module_name(path))
    assert sorted(set(readers)) == ["settings", "wiring"]


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        module_name(path): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
