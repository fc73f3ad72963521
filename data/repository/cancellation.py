"""Cancelled batches: which batches may be cancelled, the operator's cancellation, and the row closed when the
workflow stops (by cancellation, or reconciled after it ended outside LoreGuard). Stored documents are kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.vocabulary import BATCH_IN_FLIGHT, ArtifactStatus, BatchStatus, Decision
from data.models import Batch, BatchDecision, Source, utcnow
from data.repository.audit import batch_name, record_audit
from data.repository.batches import artifact_status_counts, get_batch
from data.repository.sla import roll_up_batch

MAX_CANCEL = 5000  # one bulk cancellation at most: a filter matching more is refused, not half done


@dataclass(frozen=True)
class CancellableBatch:
    batch_id: int
    source_name: str
    status: str
    workflow_id: str | None
    started_at: datetime | None


def cancellable_batches(
    session: Session,
    *,
    source_id: int | None = None,
    status: str | None = None,
    since: datetime | None = None,
    batch_ids: list[int] | None = None,
    limit: int = MAX_CANCEL + 1,
) -> list[CancellableBatch]:
    """Batches in flight (running, pending, retrying, awaiting approval) matching the filter, oldest first.

    `status` narrows to one in-flight status (any other status matches nothing: only running batches stop)."""
    stmt = (
        select(Batch.id, Source.name, Batch.status, Batch.workflow_id, Batch.started_at)
        .join(Source, Source.id == Batch.source_id)
        .where(Batch.status.in_(BATCH_IN_FLIGHT))
    )
    if source_id is not None:
        stmt = stmt.where(Batch.source_id == source_id)
    if status is not None:
        stmt = stmt.where(Batch.status == status)
    if since is not None:
        stmt = stmt.where(Batch.created_at >= since)
    if batch_ids is not None:
        stmt = stmt.where(Batch.id.in_(batch_ids))
    rows = session.execute(stmt.order_by(Batch.id).limit(limit)).all()
    return [CancellableBatch(int(i), str(n), str(s), w, t) for i, n, s, w, t in rows]


def record_cancel(session: Session, *, batch_id: int, actor: str, reason: str) -> None:
    """Who cancelled the batch and why: on its row (the last decision), in its decision history and the audit
    log. The workflow closes the row itself when it stops (`close_cancelled_batch`)."""
    batch = get_batch(session, batch_id=batch_id)
    batch.decision = Decision.CANCELLED
    batch.decided_by = actor
    batch.decision_reason = reason
    batch.decided_at = utcnow()
    session.add(
        BatchDecision(
            batch_id=batch_id, attempt=batch.attempt, decision=Decision.CANCELLED, actor=actor, reason=reason
        )
    )
    record_audit(
        session,
        actor=actor,
        action="cancel",
        target=f"batch:{batch_id}",
        reason=reason,
        target_name=batch_name(session, batch_id),
    )


def close_cancelled_batch(
    session: Session, *, batch_id: int, how: str, target_hours: float, zone: str
) -> Batch:
    """End the batch cancelled, counting what it did: stored documents stay stored (and say so), documents
    not yet processed stay as they are. Idempotent: a batch already ended is returned unchanged."""
    batch = get_batch(session, batch_id=batch_id)
    if batch.status not in BATCH_IN_FLIGHT:
        return batch
    counts = artifact_status_counts(session, batch_id=batch_id)
    stored = counts.get(ArtifactStatus.STORED, 0)
    quarantined = counts.get(ArtifactStatus.QUARANTINED, 0)
    left = counts.get(ArtifactStatus.INGESTED, 0) + counts.get(ArtifactStatus.PROCESSED, 0)
    summary = f"{how}: {stored} stored document(s) kept"
    if quarantined:
        summary += f", {quarantined} quarantined by the failed attempt"
    summary += f"; {left} not processed" if left else "; nothing was left to process"
    batch.total = sum(counts.values())
    batch.stored = stored
    batch.failed = counts.get(ArtifactStatus.FAILED, 0)
    batch.unchanged = counts.get(ArtifactStatus.UNCHANGED, 0) + (batch.recognised or 0)
    batch.status = BatchStatus.CANCELLED
    batch.compensation = summary
    batch.finished_at = utcnow()
    roll_up_batch(session, batch_id=batch_id, target_hours=target_hours, zone=zone)
    return batch


def close_ended_batch(
    session: Session, *, batch_id: int, status: str, message: str, target_hours: float, zone: str
) -> bool:
    """Reconcile a batch whose workflow ended without closing its row (terminated, timed out or failed in
    Temporal): cancelled or failed with why. Returns whether the row changed (False when it ended already)."""
    batch = get_batch(session, batch_id=batch_id)
    if batch.status not in BATCH_IN_FLIGHT:
        return False
    if status == BatchStatus.CANCELLED:
        close_cancelled_batch(session, batch_id=batch_id, how=message, target_hours=target_hours, zone=zone)
        batch.error_message = message
        return True
    counts = artifact_status_counts(session, batch_id=batch_id)
    batch.total = sum(counts.values())
    batch.stored = counts.get(ArtifactStatus.STORED, 0)
    batch.failed = counts.get(ArtifactStatus.FAILED, 0)
    batch.unchanged = counts.get(ArtifactStatus.UNCHANGED, 0) + (batch.recognised or 0)
    batch.status = BatchStatus.FAILED
    batch.error_type = batch.error_type or "WorkflowEnded"
    batch.error_message = message
    batch.finished_at = utcnow()
    roll_up_batch(session, batch_id=batch_id, target_hours=target_hours, zone=zone)
    return True


def started_in_flight(session: Session, *, limit: int = 2000) -> list[tuple[int, str]]:
    """(batch id, workflow id) of batches in flight with a workflow (the reconciler describes them).

    A scheduled batch not started yet holds its scheduled run's "workflow id/run id" instead (create_batch):
    the reconciler describes that run."""
    rows = session.execute(
        select(Batch.id, Batch.workflow_id)
        .where(Batch.status.in_(BATCH_IN_FLIGHT), Batch.workflow_id.is_not(None))
        .order_by(Batch.id)
        .limit(limit)
    ).all()
    return [(int(i), str(w)) for i, w in rows]
