"""Migrations are frozen at their revision: none imports the live models, repository or any other project code
(a later change there would silently change what an old migration does), only the settings it is run with."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from data.migrate import MIGRATIONS_DIR

ALLOWED = {"alembic", "sqlalchemy", "core.settings"}  # beyond the standard library


def imported_modules(path: Path) -> set[str]:
    """Every module the file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def allowed(module: str) -> bool:
    root = module.partition(".")[0]
    return root in sys.stdlib_module_names or any(
        module == name or module.startswith(f"{name}.") for name in ALLOWED
    )


@pytest.mark.parametrize(
    "migration", sorted((MIGRATIONS_DIR / "versions").glob("[0-9]*.py")), ids=lambda path: path.stem
)
def test_a_migration_imports_no_live_project_code(migration: Path) -> None:
    assert sorted(m for m in imported_modules(migration) if not allowed(m)) == []


def test_the_guard_sees_an_import_of_the_repository_inside_a_function(tmp_path: Path) -> None:
    migration = tmp_path / "0099_example.py"
    migration.write_text("def upgrade():\n    from data.repository.sla import rebuild_sla_rollups\n")
    assert [m for m in imported_modules(migration) if not allowed(m)] == ["data.repository.sla"]
