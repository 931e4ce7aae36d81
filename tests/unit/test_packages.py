"""analyzer's package layout: a few modules at the top, and no import cycle between its modules,
counting the imports under TYPE_CHECKING and inside functions (which import-linter's layers
contract sees only package by package)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ANALYZER = Path(__file__).resolve().parents[2] / "analyzer"


def module_imports(root: Path) -> dict[str, set[str]]:
    """Each module under `root` (a package directory) and the modules of it that it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(root.name):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith(root.name + ".")}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` as a path that ends where it starts, or [] when there is none.
    A package's own `__init__` importing its modules is not a cycle with them."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in graph or node.startswith(dep + "."):  # a module imports its own package
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_cycle_finder_finds_a_cycle_through_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import x\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import y\n"
    )
    assert find_cycle(module_imports(pkg)) == ["pkg.a", "pkg.b", "pkg.a"]
    (pkg / "b.py").write_text("x = 1\n")
    assert find_cycle(module_imports(pkg)) == []


def test_analyzer_has_no_import_cycle() -> None:
    assert find_cycle(module_imports(ANALYZER)) == []


def test_analyzer_top_level_is_packages_and_a_few_base_modules() -> None:
    modules = sorted(p.name for p in ANALYZER.glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= 8, modules
    assert sorted(p.name for p in ANALYZER.iterdir() if (p / "__init__.py").exists()) == [
        "cli",
        "config",
        "judge",
        "load",
        "measure",
        "plan",
        "predict",
        "report",
        "search",
        "server",
        "spec",
        "stats",
        "store",
        "sweep",
        "workload",
    ]


def test_the_module_map_in_the_docs_is_current() -> None:
    """docs/architecture.md's map is generated from the docstrings (docs/module_map.py)."""
    done = subprocess.run(
        [sys.executable, str(ANALYZER.parent / "docs" / "module_map.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
