"""The test tree's layout: no test module imports another test module. What tests share lives in
tests/helpers.py (processes, servers, specs), tests/builders.py (rows and tables), tests/pg.py
and tests/conftest.py, so that moving or deleting one test module never breaks another."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SHARED = {"tests", "tests.helpers", "tests.builders", "tests.pg", "tests.conftest"}


def imported_test_modules(path: Path) -> list[str]:
    """'line: module' for each import in the file at `path` of a tests module that is not one of
    the shared ones (a relative import counts as a test module's)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names = ["." * node.level + (node.module or "")]
        elif isinstance(node, ast.ImportFrom) and node.module == "tests":
            names = [f"tests.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            ours = name.startswith(".") or name == "tests" or name.startswith("tests.")
            if ours and name not in SHARED:
                found.append(f"{node.lineno}: {name}")
    return found


def test_the_check_names_each_import_of_another_test_module(tmp_path: Path) -> None:
    module = tmp_path / "test_bad.py"
    module.write_text(
        "from tests.unit.test_report import x\n"
        "import tests.integration.test_sweep\n"
        "from tests import helpers, test_other\n"
        "from .test_near import y\n"
        "from tests.helpers import ROOT\n"
        "from tests.builders import measurement_row\n"
        "import tests.pg\n"
        "from analyzer.tests_like import z\n"
        "def f():\n"
        "    from tests.faults.test_bounds import w\n"
    )
    assert imported_test_modules(module) == [
        "1: tests.unit.test_report",
        "2: tests.integration.test_sweep",
        "3: tests.test_other",
        "4: .test_near",
        "10: tests.faults.test_bounds",
    ]


def test_no_test_module_imports_another() -> None:
    modules = sorted(TESTS.rglob("test_*.py"))
    assert TESTS / "unit" / "test_layout.py" in modules  # the tree was found
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}" for path in modules for line in imported_test_modules(path)
    ]
    assert offenders == [], "test modules import other test modules:\n" + "\n".join(offenders)
