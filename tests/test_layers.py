"""The house's layers (.importlinter) hold: `lint-imports` passes here, and fails on a forbidden import; the
benchmarks (bench/, scripts rather than a package) use the project's packages, never the test suite."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "data", "orchestration", "workers", "operations", "cli", "dashboard", "pages")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command on `tree` (its packages first on the path, as if it were the checkout)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / ".importlinter"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_layer_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_workflow_importing_the_database_breaks_the_contracts(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "samples")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    workflows = tmp_path / "orchestration" / "workflows.py"
    workflows.write_text(workflows.read_text() + "\nfrom data import repository  # noqa: E402\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "orchestration.workflows -> data" in result.stdout


def suite_imports(path: Path) -> list[str]:
    """The modules under tests/ that a script imports (at the top or inside a function)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [n for n in names if n == "tests" or n.startswith("tests.")]
    return found


@pytest.mark.parametrize("script", sorted((ROOT / "bench").glob("*.py")), ids=lambda path: path.name)
def test_a_benchmark_imports_nothing_from_the_test_suite(script: Path) -> None:
    assert suite_imports(script) == []


def test_the_benchmark_check_sees_an_import_of_the_test_suite_inside_a_function(tmp_path: Path) -> None:
    script = tmp_path / "bench.py"
    script.write_text("def corpus():\n    from tests.support.corpus import write_corpus\n")
    assert suite_imports(script) == ["tests.support.corpus"]
