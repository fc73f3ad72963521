"""Bounds a user sees on a batch, through the real pipeline: the per-batch cap, raw bytes dropped once stored,
and a refresh of an unchanged source that stores nothing twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from data.models import Artifact, Batch, Evaluation
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings, running_worker
from tests.support.corpus import write_corpus
from tests.support.library import add_source
from tests.support.operations import start_refresh

pytestmark = pytest.mark.temporal


def batch_counts(sessions: sessionmaker[Session], batch_id: int) -> tuple[str, int, int, int, int, int]:
    with sessions() as session:
        b = session.get_one(Batch, batch_id)
        return b.status, b.total, b.stored, b.failed, b.unchanged, b.skipped


def raw_kept(sessions: sessionmaker[Session], batch_id: int) -> int:
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count()).where(Artifact.batch_id == batch_id, Artifact.raw.is_not(None))
            )
            or 0
        )


async def test_a_refresh_of_an_unchanged_folder_stores_nothing_twice_and_keeps_no_raw_bytes(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    paths = write_corpus(folder, 6)
    source_id = add_source(sqlite_sessions, folder)
    client = await namespace.connect()
    async with running_worker(client, pipeline_settings(sqlite_url, namespace)):
        first, h1 = await start_refresh(client, sqlite_sessions, source_id=source_id)
        await h1.result()
        # full refreshes: every file is read and normalized again (an incremental one would not even read
        # them; tests/orchestration/test_incremental_refresh.py), and the same text is still not stored twice
        second, h2 = await start_refresh(client, sqlite_sessions, source_id=source_id, full=True)
        await h2.result()
        edited = next(p for p in paths if p.suffix == ".txt")
        edited.write_text(edited.read_text() + "\n\nA paragraph added since the last refresh.\n")
        third, h3 = await start_refresh(client, sqlite_sessions, source_id=source_id, full=True)
        await h3.result()

    assert batch_counts(sqlite_sessions, first) == ("completed", 6, 6, 0, 0, 0)
    assert batch_counts(sqlite_sessions, second) == ("completed", 6, 0, 0, 6, 0)
    assert batch_counts(sqlite_sessions, third) == ("completed", 6, 1, 0, 5, 0)
    with sqlite_sessions() as session:
        originals = set(session.scalars(select(Artifact.id).where(Artifact.batch_id == first)))
        unchanged = session.execute(
            select(Artifact.status, Artifact.duplicate_of_id, Artifact.text).where(
                Artifact.batch_id == second
            )
        ).all()
        assert {(status, text) for status, _, text in unchanged} == {("unchanged", None)}
        assert {original for _, original, _ in unchanged} == originals
        evaluated = session.scalar(
            select(func.count()).select_from(Evaluation).join(Artifact).where(Artifact.batch_id == second)
        )
        assert evaluated == 0  # not evaluated again either
    assert [raw_kept(sqlite_sessions, b) for b in (first, second, third)] == [0, 0, 0]


async def test_a_source_over_the_per_batch_limit_completes_with_the_rest_skipped_and_raw_kept_when_asked(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_corpus(folder, 9)
    source_id = add_source(sqlite_sessions, folder)
    settings = pipeline_settings(sqlite_url, namespace, max_documents_per_batch=4, raw_retention="keep")
    client = await namespace.connect()
    async with running_worker(client, settings):
        batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
        result = await handle.result()

    assert (result.status, result.total, result.stored) == ("completed", 4, 4)
    assert batch_counts(sqlite_sessions, batch_id) == ("completed", 4, 4, 0, 0, 5)
    assert raw_kept(sqlite_sessions, batch_id) == 4
