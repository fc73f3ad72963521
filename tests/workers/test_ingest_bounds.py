"""Ingest under its bounds: the per-batch cap, writes flushed by bytes, heartbeats while listing and fetching.

The ingest step runs here without Temporal; `heartbeat` stands in for `activity.heartbeat`, which records the
resume point and raises once the activity has been cancelled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from data import repository
from data.models import Artifact, Batch
from orchestration.types import IngestInput
from tests.support.corpus import write_corpus
from tests.support.hostile_standins import HostileSite, Trickle
from workers.steps import BatchSteps, build_steps


class Cancelled(Exception):
    """What the SDK's heartbeat raises in an activity that was cancelled."""


class Heartbeats:
    """Records every heartbeat's details; raises Cancelled from the `cancel_after`-th call on."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.details: list[tuple[Any, ...]] = []
        self.cancel_after = cancel_after

    def __call__(self, *details: Any) -> None:
        self.details.append(details)
        if self.cancel_after is not None and len(self.details) >= self.cancel_after:
            raise Cancelled("activity cancelled")


@pytest.fixture
def make_steps(sqlite_url: str, sqlite_sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[Any]:
    built: list[BatchSteps] = []

    def make(**overrides: Any) -> BatchSteps:
        settings = Settings(
            database_url=sqlite_url, allowed_hosts=["127.0.0.1"], folder_roots=[tmp_path], **overrides
        )
        steps = build_steps(settings)
        built.append(steps)
        return steps

    yield make
    for steps in built:
        steps.http.close()
        steps.fetcher.close()


def new_batch(sessions: sessionmaker[Session], *, kind: str, location: str) -> int:
    with sessions.begin() as session:
        source = repository.create_source(session, name="src", kind=kind, location=location)
        return repository.create_batch(session, source_id=source.id).id


def seqs(sessions: sessionmaker[Session], batch_id: int) -> list[int]:
    with sessions() as session:
        return list(
            session.scalars(select(Artifact.seq).where(Artifact.batch_id == batch_id).order_by(Artifact.seq))
        )


def test_a_source_over_the_per_batch_limit_is_gathered_up_to_it_and_the_rest_counted_as_skipped(
    make_steps: Any, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    paths = write_corpus(tmp_path / "docs", 8)
    batch_id = new_batch(sqlite_sessions, kind="folder", location=str(tmp_path / "docs"))

    result = make_steps(max_documents_per_batch=5).ingest_source(IngestInput(batch_id=batch_id))

    assert (result.total, result.skipped, result.failed) == (5, 3, 0)
    with sqlite_sessions() as session:
        batch = session.get_one(Batch, batch_id)
        assert (batch.total, batch.skipped) == (5, 3)
        uris = session.scalars(
            select(Artifact.uri).where(Artifact.batch_id == batch_id).order_by(Artifact.seq)
        )
        assert [Path(u).name for u in uris] == [p.name for p in paths[:5]]  # the first five, in ingest order


# Heartbeats: one while listing, then one after each insert (and every second between them). Flushed by bytes,
# each document is written at once: cancelled at the 4th heartbeat, three were written. Under the default the
# six documents are written together, and the cancel arrives at the heartbeat after that insert.
@pytest.mark.parametrize(
    ("flush_bytes", "cancel_after", "committed"),
    [(32 * 1024 * 1024, 2, [0, 1, 2, 3, 4, 5]), (1, 4, [0, 1, 2])],
)
def test_ingest_writes_once_its_buffer_weighs_the_flush_bytes_so_a_cancel_keeps_what_was_written(
    make_steps: Any,
    sqlite_sessions: sessionmaker[Session],
    tmp_path: Path,
    flush_bytes: int,
    cancel_after: int,
    committed: list[int],
) -> None:
    write_corpus(tmp_path / "docs", 6)
    batch_id = new_batch(sqlite_sessions, kind="folder", location=str(tmp_path / "docs"))
    heartbeats = Heartbeats(cancel_after=cancel_after)
    steps = make_steps(ingest_flush_bytes=flush_bytes)

    with pytest.raises(Cancelled):
        steps.ingest_source(IngestInput(batch_id=batch_id), heartbeat=heartbeats)

    # What was written stays written, and the last heartbeat says where a retry resumes.
    assert seqs(sqlite_sessions, batch_id) == committed
    assert heartbeats.details[-1] == (len(committed),)
    retried = steps.ingest_source(IngestInput(batch_id=batch_id), resume_from=len(committed))
    assert retried.total == 6 and seqs(sqlite_sessions, batch_id) == list(range(6))


def test_listing_a_folder_heartbeats_once_per_folder_with_the_resume_point(
    make_steps: Any, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    root = tmp_path / "tree"
    for i in range(5):
        (root / f"part-{i}" / "deeper").mkdir(parents=True)
    batch_id = new_batch(sqlite_sessions, kind="folder", location=str(root))
    heartbeats = Heartbeats()

    result = make_steps().ingest_source(IngestInput(batch_id=batch_id), resume_from=0, heartbeat=heartbeats)

    assert result.total == 0
    assert heartbeats.details.count((0,)) >= 11  # the root and its ten folders, each with the resume point


def test_a_slow_fetch_heartbeats_while_it_reads_and_a_cancel_stops_it(
    make_steps: Any, sqlite_sessions: sessionmaker[Session]
) -> None:
    with HostileSite({"/slow": Trickle(byte=b"<", every=0.05, seconds=30)}) as site:
        batch_id = new_batch(sqlite_sessions, kind="web", location=site.url_for("/slow"))
        heartbeats = Heartbeats(cancel_after=20)

        with pytest.raises(Cancelled):
            make_steps().ingest_source(IngestInput(batch_id=batch_id), heartbeat=heartbeats)

    # Twenty heartbeats came while the body trickled in (30 s of it), and the cancel ended the fetch there.
    assert heartbeats.details == [(0,)] * 20
    assert seqs(sqlite_sessions, batch_id) == []


@pytest.mark.parametrize("allowed", [False, True])
def test_the_worker_records_a_hard_link_as_a_failed_document_unless_allowed(
    make_steps: Any, sqlite_sessions: sessionmaker[Session], tmp_path: Path, allowed: bool
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a-note.txt").write_text("A short note about access reviews for vendors.")
    secret = tmp_path / "outside" / "credentials.txt"
    secret.parent.mkdir()
    secret.write_text("database password: hunter2")
    os.link(secret, folder / "b-report.txt")
    batch_id = new_batch(sqlite_sessions, kind="folder", location=str(folder))

    result = make_steps(folder_allow_hard_links=allowed).ingest_source(IngestInput(batch_id=batch_id))

    with sqlite_sessions() as session:
        rows = session.execute(
            select(Artifact.seq, Artifact.status, Artifact.error, Artifact.raw).where(
                Artifact.batch_id == batch_id
            )
        ).all()
    assert result.total == 2 and result.failed == (0 if allowed else 1)
    linked = rows[1]
    if allowed:
        assert linked.error is None and b"hunter2" in linked.raw
    else:
        assert linked.status == "failed" and linked.raw in (None, b"")
        assert "skipped b-report.txt: a hard link (2 names for this file)" in linked.error
        assert "LOREGUARD_FOLDER_ALLOW_HARD_LINKS=true" in linked.error
