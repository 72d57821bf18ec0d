"""No import cycles inside the package: every module's imports, read from its source, form a DAG.

Every ``import`` and ``from ... import`` of a ``speakerverify`` module counts, at module level or
inside a function (a deferred import still makes a cycle, only a later one), except those under
``if TYPE_CHECKING:``, which never run. ``from pkg import name`` counts as an import of
``pkg.name`` when that is a module, else of ``pkg``. A package's ``__init__`` is the module
``pkg``; a submodule importing a sibling does not count as importing the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "speakerverify"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(tree: ast.AST, current: str, is_package: bool, known: set[str]) -> set[str]:
    found: set[str] = set()

    def resolve(base: str, level: int) -> str:
        if not level:
            return base
        parts = current.split(".") if is_package else current.split(".")[:-1]
        parts = parts[: len(parts) - (level - 1)]
        return ".".join([*parts, base] if base else parts)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module or "", node.level)
            if base.split(".")[0] == PACKAGE:
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in known and m != current}


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    return {name: imported_modules(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", known)
            for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := walk(start)):
            return cycle
    return None


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 40 and "speakerverify.scoring.fit" in graph  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from speakerverify.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from speakerverify import a  # deferred: still a cycle\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from speakerverify import a\n")
    graph = import_graph(pkg)
    assert graph["speakerverify.c"] == set()
    assert find_cycle(graph) == ["speakerverify.a", "speakerverify.sub.b", "speakerverify.a"]
    (pkg / "sub" / "b.py").write_text("from . import c\n")
    assert find_cycle(import_graph(pkg)) is None
