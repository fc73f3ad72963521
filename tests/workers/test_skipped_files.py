"""A folder's files of a type the pipeline does not read no longer vanish from a batch: ingest counts them as
skipped with the reason, beside the documents past the per-batch limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from data import repository
from data.models import Batch
from guard.fetching import Fetcher
from guard.gather import FolderCount, list_folder, preview_source
from orchestration.types import IngestInput
from workers.steps import BatchSteps, build_steps

OVER_LIMIT = "over the per-batch limit (LOREGUARD_MAX_DOCUMENTS_PER_BATCH)"


@pytest.fixture
def make_steps(sqlite_url: str, tmp_path: Path) -> Iterator[Any]:
    built: list[BatchSteps] = []

    def make(**overrides: Any) -> BatchSteps:
        steps = build_steps(Settings(database_url=sqlite_url, folder_roots=[tmp_path], **overrides))
        built.append(steps)
        return steps

    yield make
    for steps in built:
        steps.http.close()
        steps.fetcher.close()


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """3 readable documents, 4 files of types the pipeline does not read, and hidden files never read."""
    docs = tmp_path / "docs"
    (docs / "nested").mkdir(parents=True)
    (docs / "a.md").write_text("# Access policy\n\nWho may read what.\n")
    (docs / "b.txt").write_text("Quarterly notes.\n")
    (docs / "nested" / "c.html").write_text("<html><body><p>Minutes of the meeting.</p></body></html>")
    (docs / "data.xyz").write_bytes(b"\x00\x01")
    (docs / "nested" / "more.XYZ").write_bytes(b"\x00\x02")
    (docs / "report.docx").write_bytes(b"PK\x03\x04")
    (docs / "README").write_text("no suffix")
    (docs / ".DS_Store").write_bytes(b"\x00")
    (docs / ".git").mkdir()
    (docs / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return docs


def test_unsupported_files_are_counted_as_skipped_with_the_reason(
    make_steps: Any, sqlite_sessions: sessionmaker[Session], mixed_folder: Path
) -> None:
    with sqlite_sessions.begin() as session:
        source = repository.create_source(session, name="docs", kind="folder", location=str(mixed_folder))
        batch_id = repository.create_batch(session, source_id=source.id).id

    result = make_steps(max_documents_per_batch=2).ingest_source(IngestInput(batch_id=batch_id))

    assert (result.total, result.failed, result.skipped) == (2, 0, 5)
    with sqlite_sessions() as session:
        batch = session.get_one(Batch, batch_id)
        assert (batch.total, batch.skipped) == (2, 5)
        assert batch.skip_reasons == {
            "unsupported file type (none)": 1,
            "unsupported file type .docx": 1,
            "unsupported file type .xyz": 2,
            OVER_LIMIT: 1,
        }


def test_a_folder_of_readable_files_skips_nothing(
    make_steps: Any, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    docs = tmp_path / "plain"
    docs.mkdir()
    (docs / "a.md").write_text("# One\n")
    with sqlite_sessions.begin() as session:
        source = repository.create_source(session, name="plain", kind="folder", location=str(docs))
        batch_id = repository.create_batch(session, source_id=source.id).id

    result = make_steps().ingest_source(IngestInput(batch_id=batch_id))

    assert (result.total, result.skipped) == (1, 0)
    with sqlite_sessions() as session:
        assert session.get_one(Batch, batch_id).skip_reasons is None


def test_the_listing_and_the_dry_run_count_the_folders_files(
    mixed_folder: Path, tmp_path: Path, loopback_fetcher: Fetcher
) -> None:
    listed, previewed = FolderCount(), FolderCount()

    paths = list_folder(mixed_folder, roots=[tmp_path], count=listed)
    documents = preview_source(
        "folder", str(mixed_folder), loopback_fetcher, folder_roots=[tmp_path], limit=1, count=previewed
    )

    assert [p.name for p in paths] == ["a.md", "b.txt", "c.html"]  # what is read, as before
    assert len(documents) == 1
    for count in (listed, previewed):
        assert count.files == 7  # hidden files and folders are never read, so not counted
        assert dict(count.skipped) == {
            "unsupported file type .xyz": 2,
            "unsupported file type .docx": 1,
            "unsupported file type (none)": 1,
        }
