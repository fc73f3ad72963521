"""The suite's own scheduling holds: under `make test` (pytest-xdist, --dist loadgroup) the tests of one
xdist_group run on one worker, where their module's stack, image or browser is made once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GROUPED = r"""
import os

import pytest

pytestmark = pytest.mark.xdist_group("one-stack")


@pytest.mark.parametrize("n", range(6))
def test_grouped(n):
    with open(os.environ["RAN_ON"], "a") as ran_on:
        ran_on.write(os.environ["PYTEST_XDIST_WORKER"] + "\n")
"""


def test_the_tests_of_an_xdist_group_run_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's options
    ran_on = tmp_path / "ran-on.txt"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={**os.environ, "RAN_ON": str(ran_on)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    workers = set(ran_on.read_text().split())
    assert len(workers) == 1, (
        f"one group ran on {sorted(workers)}: pytest-xdist's loadgroup does not work with this pytest "
        "(a browser file's stack, the container image, would be made once per worker)"
    )
