"""Steps of the scheduled workflows: create a scheduled batch's row, and the SLA monitor's check."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from temporalio.exceptions import ApplicationError

from data import repository
from data.models import (
    Alert,
    Batch,
    Source,
)
from orchestration.constants import ALERT_SLA_WARNING, ERR_INVALID_SOURCE, SLA_ALERT_KINDS
from orchestration.sla import SLA_ACTIVE, alert_message, assess
from orchestration.types import AlertInput, CreateBatchInput, SlaCheckInput, SlaCheckResult
from workers.steps import BatchSteps


def create_scheduled_batch(steps: BatchSteps, input: CreateBatchInput) -> int:
    """The batch row of a scheduled refresh; the same row when the activity is retried (keyed by `key`).

    0 (no batch) when the source is paused in the database: its schedule missed the pause (Temporal was down
    then) and `loreguard up` will pause it; until then the database's word holds.
    """
    with steps._tx() as session:
        existing = session.scalar(select(Batch.id).where(Batch.workflow_id == input.key))
        if existing is not None:
            return int(existing)
        source = session.get(Source, input.source_id)
        if source is None:
            raise ApplicationError(
                f"source {input.source_id} no longer exists", type=ERR_INVALID_SOURCE, non_retryable=True
            )
        if source.paused:
            return 0
        batch = repository.create_batch(session, source_id=input.source_id, trigger=input.trigger)
        batch.workflow_id = input.key  # replaced by the batch workflow's ID when it starts
        return batch.id


def check_sla(steps: BatchSteps, input: SlaCheckInput) -> SlaCheckResult:
    """Raise the SLA alerts running batches are due (each once), resolve those of batches that ended."""
    s = steps.settings
    now = datetime.fromisoformat(input.now_iso)
    with steps._tx() as session:
        rows = session.execute(
            select(Batch.id, Batch.started_at, Batch.created_at, Source.name)
            .join(Source, Source.id == Batch.source_id)
            .where(Batch.status.in_(SLA_ACTIVE))
            .order_by(Batch.id)
        ).all()
        ended = session.scalars(
            select(Alert.batch_id)
            .join(Batch, Batch.id == Alert.batch_id)
            .where(
                Alert.kind.in_(SLA_ALERT_KINDS),
                Alert.resolved_at.is_(None),
                Batch.status.not_in(SLA_ACTIVE),
            )
            .distinct()
        ).all()
        resolved = sum(
            repository.resolve_alerts(session, batch_id=batch_id, kinds=SLA_ALERT_KINDS)
            for batch_id in ended
            if batch_id is not None
        )
        open_kinds = {
            (b, k)
            for b, k in session.execute(
                select(Alert.batch_id, Alert.kind).where(Alert.kind.in_(SLA_ALERT_KINDS))
            ).all()
        }
        progress = {batch_id: repository.batch_progress(session, batch_id=batch_id) for batch_id, *_ in rows}
    raised: list[str] = []
    for batch_id, started_at, created_at, source_name in rows:
        done, total = progress[batch_id]
        assessment = assess(
            started_at=started_at or created_at,
            now=now,
            done=done,
            total=total,
            warning_hours=s.sla_warning_hours,
            critical_hours=s.sla_critical_hours,
        )
        for kind, level in assessment.due:
            if (batch_id, kind) in open_kinds:
                continue  # raised before (open or resolved): once per batch
            limit = s.sla_warning_hours if kind == ALERT_SLA_WARNING else s.sla_critical_hours
            steps.raise_alert(
                AlertInput(
                    batch_id=batch_id,
                    kind=kind,
                    level=level,
                    message=alert_message(batch_id, source_name, level, assessment, limit),
                )
            )
            raised.append(f"batch {batch_id}: {kind}")
    return SlaCheckResult(checked=len(rows), raised=raised, resolved=resolved)
