"""`loreguard source add --dry-run`: the first documents, how many files a folder holds and what a batch
would skip and why; nothing saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cli.main import run
from data.models import AuditEvent, Source


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, in_process_env: sessionmaker[Session]
) -> sessionmaker[Session]:
    monkeypatch.setenv("LOREGUARD_FOLDER_ROOTS", json.dumps([str(tmp_path)]))
    return in_process_env


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "mixed"
    docs.mkdir()
    (docs / "a.md").write_text("# Access policy\n\nWho may read what.\n")
    (docs / "data.xyz").write_bytes(b"\x00")
    (docs / "more.xyz").write_bytes(b"\x01")
    (docs / "notes").write_text("no suffix")
    return docs


def saved(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        return (
            int(session.scalar(select(func.count()).select_from(Source)) or 0),
            int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0),
        )


def test_a_folders_dry_run_says_what_a_batch_would_skip_and_saves_nothing(
    env: sessionmaker[Session], folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["source", "add", "mixed", "--kind", "folder", "--location", str(folder), "--dry-run"]

    assert run(args) == 0
    out = capsys.readouterr().out
    assert "a.md" in out and "Access policy" in out
    assert (
        "The folder holds 4 file(s) (hidden ones are never read); a batch would skip 3: "
        "unsupported file type .xyz (2), unsupported file type (none) (1)." in out
    )
    assert "nothing was saved" in out

    assert run([*args, "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["files"] == 4
    assert dry["skipped"] == {"unsupported file type .xyz": 2, "unsupported file type (none)": 1}
    assert [Path(d["uri"]).name for d in dry["documents"]] == ["a.md"]
    assert saved(env) == (0, 0)
