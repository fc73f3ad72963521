"""Batches: create, progress, finish, list; which are in flight."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.vocabulary import BATCH_IN_FLIGHT, ArtifactStatus, BatchStatus
from data.models import Artifact, Batch, Source, utcnow
from data.repository._base import NotFound
from data.repository.incremental import complete_incremental
from data.repository.sources import get_source

# --- batches -------------------------------------------------------------------------------------------


def create_batch(session: Session, *, source_id: int, trigger: str = "manual", full: bool = False) -> Batch:
    get_source(session, source_id=source_id)
    batch = Batch(source_id=source_id, trigger=trigger, status=BatchStatus.PENDING, full=full)
    session.add(batch)
    session.flush()
    return batch


def get_batch(session: Session, *, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch with id {batch_id}")
    return batch


def mark_batch_running(session: Session, *, batch_id: int, workflow_id: str) -> Batch:
    batch = get_batch(session, batch_id=batch_id)
    batch.status = BatchStatus.RUNNING
    batch.workflow_id = workflow_id
    if batch.started_at is None:
        batch.started_at = utcnow()
    return batch


def batch_with_workflow_id(session: Session, *, workflow_id: str) -> int | None:
    return session.scalar(select(Batch.id).where(Batch.workflow_id == workflow_id))


def batch_in_flight(session: Session, *, source_id: int) -> int | None:
    """The newest batch of the source that is still in flight (its workflow owns its rows), if any."""
    return session.scalar(
        select(func.max(Batch.id)).where(Batch.source_id == source_id, Batch.status.in_(BATCH_IN_FLIGHT))
    )


def close_unstarted_batch(session: Session, *, batch_id: int, error_type: str, message: str) -> None:
    """A batch row whose workflow never started ends failed with why, not pending forever.

    (If the start did reach Temporal after all, the workflow marks the batch running again and finishes it.)
    """
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.status == BatchStatus.PENDING, Batch.started_at.is_(None))
        .values(status=BatchStatus.FAILED, error_type=error_type, error_message=message, finished_at=utcnow())
    )


@dataclass(frozen=True)
class InFlightBatch:
    batch_id: int
    started_at: datetime
    source_name: str


def in_flight_batches(session: Session) -> list[InFlightBatch]:
    """Batches in flight, oldest first, with when their SLA clock started (start, else creation)."""
    rows = session.execute(
        select(Batch.id, Batch.started_at, Batch.created_at, Source.name)
        .join(Source, Source.id == Batch.source_id)
        .where(Batch.status.in_(BATCH_IN_FLIGHT))
        .order_by(Batch.id)
    ).all()
    return [InFlightBatch(i, started or created, name) for i, started, created, name in rows]


def record_ingested(
    session: Session,
    *,
    batch_id: int,
    skipped: int = 0,
    skip_reasons: dict[str, int] | None = None,
    recognised: int = 0,
    unchanged_at_source: bool = False,
    http_etag: str | None = None,
    http_last_modified: str | None = None,
) -> int:
    """Set the batch's total from the artifacts ingest wrote, how many it skipped and why (reason -> count),
    and what an incremental refresh found (files recognised unread, a 304, the server's validators); returns
    the total."""
    total = session.scalar(select(func.count()).where(Artifact.batch_id == batch_id)) or 0
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id)
        .values(
            total=total,
            skipped=skipped,
            skip_reasons=skip_reasons or None,
            recognised=recognised,
            unchanged_at_source=unchanged_at_source,
            http_etag=http_etag,
            http_last_modified=http_last_modified,
            ingested_at=utcnow(),
        )
    )
    return int(total)


def artifact_status_counts(session: Session, *, batch_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Artifact.status, func.count()).where(Artifact.batch_id == batch_id).group_by(Artifact.status)
    )
    return {status: int(n) for status, n in rows}


def finish_batch(
    session: Session,
    *,
    batch_id: int,
    status: str,
    error_type: str | None = None,
    error_message: str | None = None,
) -> Batch:
    if (
        status == BatchStatus.COMPLETED
    ):  # a retried batch that succeeded: its quarantined documents are good again
        session.execute(
            update(Artifact)
            .where(Artifact.batch_id == batch_id, Artifact.status == ArtifactStatus.QUARANTINED)
            .values(status=ArtifactStatus.STORED)
        )
    counts = artifact_status_counts(session, batch_id=batch_id)
    batch = get_batch(session, batch_id=batch_id)
    batch.total = sum(counts.values())
    batch.stored = counts.get(ArtifactStatus.STORED, 0)
    batch.failed = counts.get(ArtifactStatus.FAILED, 0)
    batch.unchanged = counts.get(ArtifactStatus.UNCHANGED, 0) + (batch.recognised or 0)
    batch.status = status
    batch.error_type = error_type
    batch.error_message = error_message
    batch.finished_at = utcnow()
    if status == BatchStatus.COMPLETED:
        complete_incremental(session, batch=batch)
    return batch


@dataclass(frozen=True)
class BatchRow:
    """A batch as every list and page shows it: the row, its source's name and the decision on it."""

    id: int
    source_id: int
    source_name: str
    workflow_id: str | None
    status: str
    trigger: str
    attempt: int
    total: int
    stored: int
    failed: int
    skipped: int
    unchanged: int
    error_type: str | None
    error_message: str | None
    failed_stage: str | None
    compensation: str | None
    decision: str | None
    decided_by: str | None
    decision_reason: str | None
    decision_deadline: datetime | None
    decided_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    ingested_at: datetime | None = None  # None while a running batch is still gathering its documents
    recognised: int = 0  # folder files that matched their last sighting: not read (part of `unchanged`)
    unchanged_at_source: bool = False  # the feed or page answered 304 Not Modified: nothing gathered
    full: bool = False  # an operator asked for a full refresh (nothing recognised, everything processed)
    skip_reasons: dict[str, int] | None = None  # why `skipped` were not gathered (None: over the limit)


def batch_row(batch: Batch, source_name: str) -> BatchRow:
    return BatchRow(
        id=batch.id,
        source_id=batch.source_id,
        source_name=source_name,
        workflow_id=batch.workflow_id,
        status=batch.status,
        trigger=batch.trigger,
        attempt=batch.attempt,
        total=batch.total,
        stored=batch.stored,
        failed=batch.failed,
        skipped=batch.skipped,
        unchanged=batch.unchanged,
        error_type=batch.error_type,
        error_message=batch.error_message,
        failed_stage=batch.failed_stage,
        compensation=batch.compensation,
        decision=batch.decision,
        decided_by=batch.decided_by,
        decision_reason=batch.decision_reason,
        decision_deadline=batch.decision_deadline,
        decided_at=batch.decided_at,
        created_at=batch.created_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
        ingested_at=batch.ingested_at,
        recognised=batch.recognised or 0,
        unchanged_at_source=bool(batch.unchanged_at_source),
        full=bool(batch.full),
        skip_reasons=batch.skip_reasons,
    )


def _with_source() -> Any:  # Select of (Batch, source name)
    return select(Batch, Source.name).join(Source, Source.id == Batch.source_id)


def batch_rows_awaiting_decision(session: Session) -> list[BatchRow]:
    """Batches awaiting a decision, the one nearest its timeout first."""
    stmt = _with_source().where(Batch.status == BatchStatus.AWAITING_APPROVAL)
    stmt = stmt.order_by(Batch.decision_deadline.is_(None), Batch.decision_deadline, Batch.id)
    return [batch_row(b, name) for b, name in session.execute(stmt)]


def batch_detail(session: Session, *, batch_id: int) -> BatchRow | None:
    row = session.execute(_with_source().where(Batch.id == batch_id)).first()
    return None if row is None else batch_row(*row)


def list_batches(
    session: Session,
    *,
    source_id: int | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[BatchRow]:
    stmt = _with_source()
    if source_id is not None:
        stmt = stmt.where(Batch.source_id == source_id)
    if status is not None:
        stmt = stmt.where(Batch.status == status)
    if since is not None:
        stmt = stmt.where(Batch.created_at >= since)
    stmt = stmt.order_by(Batch.id.desc()).limit(limit)
    return [batch_row(b, name) for b, name in session.execute(stmt)]
