"""Failed batches: compensation, decisions, retries, alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.vocabulary import BATCH_IN_FLIGHT, ArtifactStatus, BatchStatus, Stage
from data.models import Alert, Artifact, Batch, BatchDecision, utcnow
from data.repository._base import _rowcount
from data.repository.audit import batch_name, record_audit
from data.repository.batches import artifact_status_counts, get_batch

FAILURE_ALERT_PREFIX = "batch_failed"  # failed-batch alerts are kinds batch_failed:attempt-N

# --- failed batches: compensation, alerts, decisions ----------------------------------------------------


def compensate_batch(session: Session, *, batch_id: int, stage: str) -> str:
    """Undo or mark a failed attempt's writes so nothing half-written shows as good; returns what was done.

    A failed ingest leaves a partial list of documents: they are removed (a retry ingests afresh).
    A batch failed by its documents keeps what it stored, quarantined until a retry succeeds.
    """
    if stage == Stage.INGEST:
        removed = _rowcount(session.execute(delete(Artifact).where(Artifact.batch_id == batch_id)))
        summary = f"removed {removed} partially ingested document(s)"
    else:
        quarantined = _rowcount(
            session.execute(
                update(Artifact)
                .where(Artifact.batch_id == batch_id, Artifact.status == ArtifactStatus.STORED)
                .values(status=ArtifactStatus.QUARANTINED)
            )
        )
        already = session.scalar(
            select(func.count()).where(
                Artifact.batch_id == batch_id, Artifact.status == ArtifactStatus.QUARANTINED
            )
        )
        summary = f"quarantined {already} stored document(s) until a retry succeeds"
        if quarantined != already:
            summary += f" ({quarantined} newly)"
    session.execute(update(Batch).where(Batch.id == batch_id).values(compensation=summary))
    return summary


def mark_awaiting_decision(
    session: Session,
    *,
    batch_id: int,
    stage: str,
    error_type: str,
    error_message: str,
    deadline: datetime,
) -> None:
    counts = artifact_status_counts(session, batch_id=batch_id)
    batch = get_batch(session, batch_id=batch_id)
    batch.status = BatchStatus.AWAITING_APPROVAL
    batch.failed_stage = stage
    batch.error_type = error_type
    batch.error_message = error_message
    batch.decision_deadline = deadline
    batch.decision = batch.decided_by = batch.decision_reason = None
    batch.decided_at = None
    batch.total = sum(counts.values())
    batch.stored = counts.get(ArtifactStatus.STORED, 0) + counts.get(ArtifactStatus.QUARANTINED, 0)
    batch.failed = counts.get(ArtifactStatus.FAILED, 0)
    batch.unchanged = counts.get(ArtifactStatus.UNCHANGED, 0) + (batch.recognised or 0)


def record_decision(
    session: Session, *, batch_id: int, decision: str, actor: str, reason: str, attempt: int
) -> None:
    """The decision on the batch row, an audit event, and the batch's open failure alerts resolved."""
    batch = get_batch(session, batch_id=batch_id)
    batch.decision = decision
    batch.decided_by = actor
    batch.decision_reason = reason or None
    batch.decided_at = utcnow()
    session.add(
        BatchDecision(
            batch_id=batch_id, attempt=attempt, decision=decision, actor=actor, reason=reason or None
        )
    )
    action = {"approved": "approve", "rejected": "reject"}.get(decision, "reject_by_timeout")
    record_audit(
        session,
        actor=actor,
        action=action,
        target=f"batch:{batch_id}",
        reason=reason or None,
        target_name=batch_name(session, batch_id),
    )
    session.execute(
        update(Alert)
        .where(
            Alert.batch_id == batch_id,
            Alert.kind.like(f"{FAILURE_ALERT_PREFIX}%"),
            Alert.resolved_at.is_(None),
        )
        .values(resolved_at=utcnow())
    )


def open_alert_kinds(
    session: Session, *, batch_id: int, kinds: Sequence[str] = (), prefix: str = ""
) -> list[str]:
    """Kinds of the batch's unresolved alerts: those in `kinds`, or starting with `prefix`."""
    query = select(Alert.kind).where(Alert.batch_id == batch_id, Alert.resolved_at.is_(None))
    query = query.where(Alert.kind.in_(kinds)) if kinds else query.where(Alert.kind.like(f"{prefix}%"))
    return sorted(session.scalars(query).all())


def prepare_retry(session: Session, *, batch_id: int, stage: str, attempt: int) -> int:
    """Set the batch up for its next attempt; returns how many documents will be processed again.

    After a failed ingest everything is ingested afresh; otherwise only documents that failed after ingest
    (and so still have their bytes) go back to the start of processing.
    """
    batch = get_batch(session, batch_id=batch_id)
    batch.attempt = attempt
    batch.status = BatchStatus.RETRYING
    if stage == Stage.INGEST:
        return 0
    return _rowcount(
        session.execute(
            update(Artifact)
            .where(
                Artifact.batch_id == batch_id,
                Artifact.status == ArtifactStatus.FAILED,
                Artifact.failed_stage != Stage.INGEST,
            )
            .values(status=ArtifactStatus.INGESTED, failed_stage=None, error=None)
        )
    )


def raise_alert(
    session: Session, *, batch_id: int | None, kind: str, level: str, message: str
) -> tuple[Alert, bool]:
    """The alert for (batch, kind), created if new; returns (alert, created). Raising twice is harmless."""
    existing = session.scalars(select(Alert).where(Alert.batch_id == batch_id, Alert.kind == kind)).first()
    if existing is not None:
        return existing, False
    alert = Alert(batch_id=batch_id, kind=kind, level=level, message=message)
    session.add(alert)
    session.flush()
    return alert, True


def record_delivery(session: Session, *, alert_id: int, summary: str) -> None:
    session.execute(update(Alert).where(Alert.id == alert_id).values(delivery=summary))


def ended_batches_with_open_alerts(session: Session, *, kinds: Sequence[str]) -> list[int]:
    """Batches no longer in flight that still have an open alert of these kinds."""
    rows = session.scalars(
        select(Alert.batch_id)
        .join(Batch, Batch.id == Alert.batch_id)
        .where(Alert.kind.in_(kinds), Alert.resolved_at.is_(None), Batch.status.not_in(BATCH_IN_FLIGHT))
        .distinct()
    ).all()
    return [int(b) for b in rows if b is not None]


def raised_alerts(session: Session, *, kinds: Sequence[str]) -> set[tuple[int | None, str]]:
    """(batch, kind) of every alert of these kinds ever raised, open or resolved."""
    return {
        (b, k) for b, k in session.execute(select(Alert.batch_id, Alert.kind).where(Alert.kind.in_(kinds)))
    }


def resolve_alerts(session: Session, *, batch_id: int, kinds: Sequence[str]) -> int:
    return _rowcount(
        session.execute(
            update(Alert)
            .where(Alert.batch_id == batch_id, Alert.kind.in_(kinds), Alert.resolved_at.is_(None))
            .values(resolved_at=utcnow())
        )
    )
