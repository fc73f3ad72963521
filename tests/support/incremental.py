"""Helpers for incremental-refresh tests: a batch run through the real steps without Temporal, folders whose
files look written a while ago, and counts a person would read off the batch and the library."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.vocabulary import ArtifactStatus, BatchStatus
from data import repository
from data.models import Artifact, Batch, Evaluation
from orchestration.types import ChunkInput, FinishBatchInput, IngestInput
from workers.steps import BatchSteps


def backdate(*targets: Path, seconds: float = 3600) -> None:
    """These files (and every file under these folders) modified `seconds` ago: as files written before the
    refresh look (a file modified within the last second is read again each time, as git treats a racily
    clean file)."""
    past = time.time() - seconds
    for target in targets:
        for path in [target] if target.is_file() else target.rglob("*"):
            if path.is_file():
                os.utime(path, (past, past))


def write_files(folder: Path, files: dict[str, str], *, age: float = 3600) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    past = time.time() - age
    for name, text in files.items():
        path = folder / name
        path.write_text(text)
        os.utime(path, (past, past))


@dataclass(frozen=True)
class Refreshed:
    batch_id: int
    status: str
    total: int
    stored: int
    failed: int
    unchanged: int
    recognised: int
    unchanged_at_source: bool


def refresh_with_steps(
    steps: BatchSteps,
    sessions: sessionmaker[Session],
    source_id: int,
    *,
    full: bool = False,
    status: str = BatchStatus.COMPLETED,
    chunk_size: int = 50,
) -> Refreshed:
    """One batch of the source through ingest, every chunk's process and evaluate, and finish (`status`)."""
    with sessions.begin() as session:
        batch_id = repository.create_batch(session, source_id=source_id, full=full).id
    total = steps.ingest_source(IngestInput(batch_id=batch_id)).total
    for start in range(0, total, chunk_size):
        chunk = ChunkInput(batch_id=batch_id, start_seq=start, end_seq=min(start + chunk_size, total))
        steps.process_chunk(chunk)
        steps.evaluate_chunk(chunk)
    steps.finish_batch(FinishBatchInput(batch_id=batch_id, status=status))
    with sessions() as session:
        b = session.get(Batch, batch_id)
        assert b is not None
        return Refreshed(
            b.id, b.status, b.total, b.stored, b.failed, b.unchanged, b.recognised, b.unchanged_at_source
        )


def evaluations_of_source(sessions: sessionmaker[Session], source_id: int) -> int:
    """Verdicts stored for the source's documents: each one an evaluator call."""
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Evaluation)
                .join(Artifact, Artifact.id == Evaluation.artifact_id)
                .where(Artifact.source_id == source_id)
            )
            or 0
        )


def stored_uris(sessions: sessionmaker[Session], source_id: int, *, gone: bool | None = None) -> list[str]:
    """URIs of the source's stored documents (only the gone ones, only the present ones, or all)."""
    with sessions() as session:
        stmt = select(Artifact.uri).where(
            Artifact.source_id == source_id, Artifact.status == ArtifactStatus.STORED
        )
        if gone is True:
            stmt = stmt.where(Artifact.gone_at.is_not(None))
        elif gone is False:
            stmt = stmt.where(Artifact.gone_at.is_(None))
        return sorted(session.scalars(stmt))
