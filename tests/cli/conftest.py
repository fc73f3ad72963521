"""The CLI tests' fixtures: `loreguard` on a migrated database with a Temporal address where nothing listens,
`with_temporal` against a dev server of the test's own."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cli.devserver import DevServer, free_port
from tests.support.cli import SCRIPT, Loreguard, cli_env


@pytest.fixture
def loreguard(tmp_path: Path, migrated_sqlite: Path) -> Loreguard:
    """The CLI on a migrated database (a copy of the session's), with a Temporal address where nothing
    listens."""
    assert SCRIPT.exists(), f"console script missing: {SCRIPT} (pip install -e .)"
    runner = Loreguard(tmp_path, cli_env(tmp_path, f"127.0.0.1:{free_port()}"))
    shutil.copyfile(migrated_sqlite, tmp_path / "loreguard.db")
    return runner


@pytest.fixture
def with_temporal(tmp_path: Path, fresh_dev_server: DevServer) -> Loreguard:
    """The CLI against a dev server of the test's own: start_refresh uses the real scheduler queue, and other
    tests run workers on the shared `dev_server`'s scheduler queue that would pick up these batches."""
    runner = Loreguard(tmp_path, cli_env(tmp_path, fresh_dev_server.address))
    setup = runner.ok("setup")
    assert "revision" in setup.stdout
    return runner


@pytest.fixture
def in_process_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_sessions: sessionmaker[Session], sqlite_url: str
) -> sessionmaker[Session]:
    """For a command run in process (cli.main.run): only this test's LOREGUARD_ settings, its migrated SQLite
    database, and a Temporal address where nothing listens. Returns the database's sessions."""
    for key in [k for k in os.environ if k.startswith("LOREGUARD_") and k != "LOREGUARD_REQUIRE_ALL"]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LOREGUARD_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("LOREGUARD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LOREGUARD_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    return sqlite_sessions
