"""Incremental refresh of a real folder through the real steps (no Temporal): a file matching its last
successful sighting is not read, a changed one is, unchanged bytes are never processed or evaluated again,
deleted files' documents are marked gone, and only a completed batch records what it saw."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from data import repository
from data.models import Artifact
from tests.support.incremental import (
    evaluations_of_source,
    refresh_with_steps,
    stored_uris,
    write_files,
)
from workers.steps import BatchSteps, build_steps

FILES = {
    f"note-{i}.md": f"# Note {i}\n\nSecurity advisory number {i} about patching servers.\n" for i in range(6)
}


@pytest.fixture
def steps(session_factory: sessionmaker[Session], db_url: str, tmp_path: Path) -> Iterator[BatchSteps]:
    built = build_steps(Settings(database_url=db_url, evaluator="keywords", folder_roots=[tmp_path]))
    yield built
    built.http.close()
    built.fetcher.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "docs"
    write_files(path, FILES)
    return path


@pytest.fixture
def source_id(session_factory: sessionmaker[Session], folder: Path) -> int:
    with session_factory.begin() as session:
        return repository.create_source(session, name="notes", kind="folder", location=str(folder)).id


def test_a_second_refresh_of_an_unchanged_folder_reads_nothing_and_evaluates_nothing(
    steps: BatchSteps, session_factory: sessionmaker[Session], source_id: int
) -> None:
    first = refresh_with_steps(steps, session_factory, source_id)
    assert (first.total, first.stored, first.recognised) == (6, 6, 0)
    verdicts = evaluations_of_source(session_factory, source_id)
    assert verdicts == 6

    second = refresh_with_steps(steps, session_factory, source_id)
    assert (second.status, second.total, second.stored) == ("completed", 0, 0)
    assert (second.recognised, second.unchanged) == (6, 6)  # the batch says 6 unchanged, none read
    assert evaluations_of_source(session_factory, source_id) == verdicts


def test_a_changed_file_is_read_and_processed_alone(
    steps: BatchSteps, session_factory: sessionmaker[Session], source_id: int, folder: Path
) -> None:
    refresh_with_steps(steps, session_factory, source_id)
    write_files(
        folder, {"note-3.md": "# Note 3\n\nA rewritten security advisory: patch the mail servers now.\n"}
    )
    changed = refresh_with_steps(steps, session_factory, source_id)
    assert (changed.total, changed.stored, changed.recognised) == (1, 1, 5)
    assert evaluations_of_source(session_factory, source_id) == 7
    # and it is recognised on the refresh after
    again = refresh_with_steps(steps, session_factory, source_id)
    assert (again.total, again.recognised) == (0, 6)


def test_a_file_touched_without_changing_is_read_but_recognised_by_its_raw_hash_before_any_stage(
    steps: BatchSteps, session_factory: sessionmaker[Session], source_id: int, folder: Path
) -> None:
    refresh_with_steps(steps, session_factory, source_id)
    path = folder / "note-2.md"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))  # another mtime, the same bytes
    touched = refresh_with_steps(steps, session_factory, source_id)
    assert (touched.total, touched.stored, touched.unchanged, touched.recognised) == (1, 0, 6, 5)
    with session_factory() as session:
        row = session.query(Artifact).filter_by(batch_id=touched.batch_id).one()
        # recorded unchanged at ingest: no stage timed it, it points at the stored original
        assert row.status == "unchanged" and row.normalize_ms is None and row.duplicate_of_id is not None
        assert row.title == "Note 2"
    assert evaluations_of_source(session_factory, source_id) == 6
    assert refresh_with_steps(steps, session_factory, source_id).recognised == 6  # its new sighting holds


def test_a_file_replaced_by_another_inode_of_the_same_size_and_time_is_read_again(
    steps: BatchSteps, session_factory: sessionmaker[Session], source_id: int, folder: Path
) -> None:
    refresh_with_steps(steps, session_factory, source_id)
    path = folder / "note-1.md"
    stat = path.stat()
    replacement = folder / "note-1.md.new"
    replacement.write_text(FILES["note-1.md"].replace("number 1", "number I"))  # same size
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    replaced = refresh_with_steps(steps, session_factory, source_id)
    assert (replaced.total, replaced.stored, replaced.recognised) == (1, 1, 5)


def test_a_deleted_file_s_document_is_marked_gone_not_deleted_and_comes_back_with_the_file(
    steps: BatchSteps, session_factory: sessionmaker[Session], source_id: int, folder: Path
) -> None:
    refresh_with_steps(steps, session_factory, source_id)
    kept = (folder / "note-4.md").read_text()
    (folder / "note-4.md").unlink()
    after = refresh_with_steps(steps, session_factory, source_id)
    assert (after.total, after.recognised) == (0, 5)
    gone = stored_uris(session_factory, source_id, gone=True)
    assert gone == [(folder / "note-4.md").absolute().as_uri()]
    assert len(stored_uris(session_factory, source_id)) == 6  # still in the library, marked gone
    with session_factory() as session:
        assert repository.count_gone(session, source_id=source_id) == 1

    write_files(folder, {"note-4.md": kept})
    back = refresh_with_steps(steps, session_factory, source_id)
    assert (back.total, back.stored, back.unchanged) == (
        1,
        0,
        6,
    )  # the same bytes: recognised, not stored twice
    assert stored_uris(session_factory, source_id, gone=True) == []


def test_a_batch_that_did_not_complete_records_no_sighting_and_marks_nothing_gone(
    steps: BatchSteps, session_factory: sessionmaker[Session], source_id: int, folder: Path
) -> None:
    failed = refresh_with_steps(steps, session_factory, source_id, status="failed")
    assert failed.total == 6
    (folder / "note-0.md").unlink()
    # Nothing was recorded by the failed batch: every file is read again (the bytes it stored are still
    # recognised by their raw hash, so none is processed twice).
    retried = refresh_with_steps(steps, session_factory, source_id)
    assert (retried.total, retried.recognised, retried.unchanged, retried.stored) == (5, 0, 5, 0)
    assert stored_uris(session_factory, source_id, gone=True) == []
    (folder / "note-1.md").unlink()
    failing = refresh_with_steps(steps, session_factory, source_id, status="failed")
    assert failing.recognised == 4
    assert stored_uris(session_factory, source_id, gone=True) == []  # only a completed batch marks gone
    done = refresh_with_steps(steps, session_factory, source_id)
    assert done.recognised == 4
    assert stored_uris(session_factory, source_id, gone=True) == [(folder / "note-1.md").absolute().as_uri()]


def test_a_full_refresh_reads_and_processes_every_file_again(
    steps: BatchSteps, session_factory: sessionmaker[Session], source_id: int, folder: Path
) -> None:
    refresh_with_steps(steps, session_factory, source_id)
    (folder / "note-5.md").unlink()
    full = refresh_with_steps(steps, session_factory, source_id, full=True)
    assert (full.total, full.recognised) == (5, 0)
    assert stored_uris(session_factory, source_id, gone=True) == [(folder / "note-5.md").absolute().as_uri()]
    with session_factory() as session:
        rows = session.query(Artifact).filter_by(batch_id=full.batch_id).all()
    # every file went through normalize again; the same text is still not stored or evaluated twice
    assert all(r.normalize_ms is not None and r.status == "unchanged" for r in rows)
    assert evaluations_of_source(session_factory, source_id) == 6
    assert refresh_with_steps(steps, session_factory, source_id).recognised == 5


def test_a_new_file_in_a_new_subfolder_is_read_while_the_rest_is_recognised(
    steps: BatchSteps, session_factory: sessionmaker[Session], source_id: int, folder: Path, tmp_path: Path
) -> None:
    refresh_with_steps(steps, session_factory, source_id)
    write_files(folder / "more", {"extra.txt": "Another security note about firewalls and audits."})
    grown = refresh_with_steps(steps, session_factory, source_id)
    assert (grown.total, grown.stored, grown.recognised) == (1, 1, 6)
    shutil.rmtree(folder / "more")
    shrunk = refresh_with_steps(steps, session_factory, source_id)
    assert shrunk.recognised == 6 and len(stored_uris(session_factory, source_id, gone=True)) == 1


def test_a_broken_file_among_unchanged_ones_is_one_failure_of_the_whole_folder_not_of_what_was_read(
    steps: BatchSteps, session_factory: sessionmaker[Session], source_id: int, folder: Path
) -> None:
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a PDF at all")
    first = refresh_with_steps(steps, session_factory, source_id)
    assert (first.total, first.failed) == (7, 1)

    # The broken file is read again (it was never stored); the six good ones are recognised unread. The failed
    # share that decides whether the batch waits for an operator counts them: 1 of 7, not 1 of 1.
    second = refresh_with_steps(steps, session_factory, source_id)
    assert (second.total, second.failed, second.recognised) == (1, 1, 6)
    tally = steps.tally_batch(second.batch_id)
    assert (tally.total, tally.failed) == (7, 1)
