"""The batch steps: load from the store, call the stage functions, persist, return counts.

`BatchSteps` is the whole set: bookkeeping and failed-batch handling here, ingest in ingest_steps.py, the
chunk steps in chunk_steps.py. Every step is idempotent (see chunk_steps.py), so a retry neither loses nor
duplicates a document.
"""

from __future__ import annotations

import logging
from datetime import datetime

import httpx

from core.settings import Settings
from core.vocabulary import ArtifactStatus
from data import repository
from data.db import make_engine, make_session_factory
from orchestration.types import (
    AlertInput,
    AwaitDecisionInput,
    BatchFailure,
    BatchPlan,
    BatchResult,
    BatchTally,
    CancelledBatchInput,
    ChunkFailureInput,
    CompensationResult,
    FinishBatchInput,
    RecordDecisionInput,
    RetryInput,
    StartBatchInput,
)
from workers.chunk_steps import ChunkSteps
from workers.ingest_steps import IngestSteps
from workers.notify import Notice, alert_key, deliver, resolve
from workers.reevaluation_steps import ReevaluationSteps
from workers.stages.clarify import ClarificationClient
from workers.stages.evaluate import make_evaluator

log = logging.getLogger(__name__)


def build_steps(settings: Settings) -> BatchSteps:
    """Steps with their own clients (engine, HTTP, evaluator): one set per process."""
    http = httpx.Client(timeout=settings.fetch_timeout_seconds, follow_redirects=True)
    clarifier = ClarificationClient(settings.clarification_url, http) if settings.clarification_url else None
    return BatchSteps(
        settings=settings,
        sessions=make_session_factory(make_engine(settings.target_database_url)),
        http=http,
        evaluator=make_evaluator(settings, http),
        clarifier=clarifier,
    )


class BatchSteps(IngestSteps, ChunkSteps, ReevaluationSteps):
    """The work of each batch step, bound to its clients; plain code, callable with or without Temporal."""

    # --- bookkeeping ------------------------------------------------------------------------------------

    def start_batch(self, input: StartBatchInput) -> BatchPlan:
        with self._tx() as session:
            repository.mark_batch_running(session, batch_id=input.batch_id, workflow_id=input.workflow_id)
            s = self.settings
            return BatchPlan(
                chunk_size=s.chunk_size,
                chunks_per_child=s.chunks_per_child,
                chunk_window=s.chunk_window,
                max_children=s.max_children,
                heartbeat_seconds=s.heartbeat_seconds,
                max_failed_share=s.max_failed_share,
                approval_timeout_hours=s.approval_timeout_hours,
            )

    def finish_batch(self, input: FinishBatchInput) -> BatchResult:
        with self._tx() as session:
            batch = repository.finish_batch(
                session,
                batch_id=input.batch_id,
                status=input.status,
                error_type=input.error_type,
                error_message=input.error_message,
            )
            # the SLA page reads rollups: the batch's day is recomputed in the same transaction
            repository.roll_up_batch(
                session,
                batch_id=batch.id,
                target_hours=self.settings.sla_target_hours,
                zone=self.settings.timezone,
            )
            return BatchResult(
                batch_id=batch.id,
                status=batch.status,
                total=batch.total,
                stored=batch.stored,
                failed=batch.failed,
                error_type=batch.error_type,
                error_message=batch.error_message,
            )

    def close_cancelled_batch(self, input: CancelledBatchInput) -> BatchResult:
        """The batch's workflow was cancelled and everything it started has stopped: close its row, and resolve
        its failure alerts (a batch cancelled while awaiting a decision needs none any more)."""
        with self.sessions() as session:
            kinds = repository.open_alert_kinds(
                session, batch_id=input.batch_id, prefix=repository.FAILURE_ALERT_PREFIX
            )
        if kinds:
            self.resolve_alerts(input.batch_id, kinds)
        with self._tx() as session:
            repository.resolve_alerts(session, batch_id=input.batch_id, kinds=kinds)
            batch = repository.close_cancelled_batch(
                session,
                batch_id=input.batch_id,
                how=input.how,
                target_hours=self.settings.sla_target_hours,
                zone=self.settings.timezone,
            )
            return BatchResult(
                batch_id=batch.id,
                status=batch.status,
                total=batch.total,
                stored=batch.stored,
                failed=batch.failed,
                error_type=batch.error_type,
                error_message=batch.error_message,
            )

    def batch_seconds(self, batch_id: int) -> float | None:
        """Start to finish of a finished batch (for the batch duration histogram), None when unknown."""
        with self.sessions() as session:
            batch = repository.get_batch(session, batch_id=batch_id)
            start, end = batch.started_at or batch.created_at, batch.finished_at
        if start is None or end is None:
            return None
        if (start.tzinfo is None) != (end.tzinfo is None):
            start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
        return (end - start).total_seconds()

    def fail_chunk(self, input: ChunkFailureInput) -> int:
        failed = 0
        with self._tx() as session:
            for status, stage in (
                (ArtifactStatus.INGESTED, "normalize"),
                (ArtifactStatus.PROCESSED, "evaluate"),
            ):
                rows = repository.load_artifacts(
                    session,
                    batch_id=input.batch_id,
                    start_seq=input.start_seq,
                    end_seq=input.end_seq,
                    status=status,
                )
                repository.update_artifacts(
                    session,
                    rows=[
                        {
                            "id": a.id,
                            "status": ArtifactStatus.FAILED,
                            "failed_stage": stage,
                            "error": input.reason,
                        }
                        for a in rows
                    ],
                )
                failed += len(rows)
        return failed

    # --- failed batches -------------------------------------------------------------------------------

    def tally_batch(self, batch_id: int) -> BatchTally:
        with self.sessions() as session:
            counts = repository.artifact_status_counts(session, batch_id=batch_id)
            # Folder files an incremental refresh recognised unread are documents of this refresh too: without
            # them, one broken file among 10,000 unchanged ones would be "1 of 1 failed" on every refresh.
            recognised = repository.get_batch(session, batch_id=batch_id).recognised or 0
        return BatchTally(
            total=sum(counts.values()) + recognised,
            stored=counts.get(ArtifactStatus.STORED, 0) + counts.get(ArtifactStatus.QUARANTINED, 0),
            failed=counts.get(ArtifactStatus.FAILED, 0),
        )

    def compensate_batch(self, failure: BatchFailure) -> CompensationResult:
        with self._tx() as session:
            return CompensationResult(
                repository.compensate_batch(session, batch_id=failure.batch_id, stage=failure.stage)
            )

    def raise_alert(self, input: AlertInput) -> str:
        """Record the alert once and notify the configured channels; a retry does not notify twice."""
        with self._tx() as session:
            alert, _ = repository.raise_alert(
                session, batch_id=input.batch_id, kind=input.kind, level=input.level, message=input.message
            )
            alert_id, delivered = alert.id, alert.delivery
        if delivered is not None:
            return delivered
        subject = (
            f"LoreGuard {input.level.upper()}: batch {input.batch_id}" if input.batch_id else "LoreGuard"
        )
        notice = Notice(
            subject=subject,
            text=input.message,
            level=input.level,
            key=alert_key(self.settings, input.batch_id, input.kind),
            kind=input.kind,
        )
        outcome = deliver(self.settings, notice, self.http, self.settings.notify_channels)
        summary = "; ".join(f"{channel}: {result}" for channel, result in outcome.items())
        with self._tx() as session:
            repository.record_delivery(session, alert_id=alert_id, summary=summary)
        return summary

    def resolve_alerts(self, batch_id: int | None, kinds: list[str]) -> None:
        """Close the incidents of these alerts in the channels that keep them open (PagerDuty)."""
        keys = [alert_key(self.settings, batch_id, kind) for kind in kinds]
        resolve(self.settings, keys, self.http, self.settings.notify_channels)

    def await_decision(self, input: AwaitDecisionInput) -> None:
        f = input.failure
        with self._tx() as session:
            repository.mark_awaiting_decision(
                session,
                batch_id=f.batch_id,
                stage=f.stage,
                error_type=f.error_type,
                error_message=f.message,
                deadline=datetime.fromisoformat(input.deadline_iso),
            )

    def record_decision(self, input: RecordDecisionInput) -> None:
        """The decision, and the batch's failure alerts resolved: on the dashboard and in PagerDuty.

        The incidents are resolved before the rows say so, so a retry after a crash in between resolves
        them again (harmless) rather than never."""
        with self.sessions() as session:
            kinds = repository.open_alert_kinds(
                session, batch_id=input.batch_id, prefix=repository.FAILURE_ALERT_PREFIX
            )
        self.resolve_alerts(input.batch_id, kinds)
        with self._tx() as session:
            repository.record_decision(
                session,
                batch_id=input.batch_id,
                decision=input.decision,
                actor=input.actor,
                reason=input.reason,
                attempt=input.attempt,
            )

    def prepare_retry(self, input: RetryInput) -> int:
        with self._tx() as session:
            return repository.prepare_retry(
                session, batch_id=input.batch_id, stage=input.stage, attempt=input.attempt
            )
