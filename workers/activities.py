"""Temporal activities: thin wrappers over the batch steps that add heartbeats and resume points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from orchestration.celery_app import EVALUATE_TASK, PROCESS_TASK
from orchestration.constants import Activity
from orchestration.types import (
    AlertInput,
    AwaitDecisionInput,
    BatchFailure,
    BatchPlan,
    BatchResult,
    BatchTally,
    CancelledBatchInput,
    ChunkFailureInput,
    ChunkInput,
    ChunkResult,
    CompensationResult,
    CreateBatchInput,
    FinishBatchInput,
    FinishReevaluationInput,
    IngestInput,
    IngestResult,
    ReconcileInput,
    ReconcileResult,
    RecordDecisionInput,
    ReevaluatePageInput,
    ReevaluatePageResult,
    RetryInput,
    SlaCheckInput,
    SlaCheckResult,
    StartBatchInput,
)
from workers.celery_chunks import CeleryChunks
from workers.metrics import ChunkReport, WorkerMetrics
from workers.monitoring import check_sla, create_scheduled_batch
from workers.pool import CpuPool, evaluates_in_pool
from workers.reconcile import reconcile_batches
from workers.steps import BatchSteps


class PipelineActivities:
    """Registered as bound methods; the steps hold the clients (database, CPU pool, HTTP, evaluator).

    With `celery` (the hybrid), the chunk activities hand their documents to Celery workers and wait for them.
    """

    def __init__(
        self,
        steps: BatchSteps,
        cpu_pool: CpuPool | None = None,
        metrics: WorkerMetrics | None = None,
        celery: CeleryChunks | None = None,
    ) -> None:
        self.steps = steps
        self.cpu_pool = cpu_pool
        self.metrics = metrics
        self.celery = celery
        steps.metrics = metrics

    def _record(self, report: ChunkReport) -> None:
        if self.metrics is not None:
            self.metrics.record_chunk(report, evaluator=self.steps.settings.evaluator)

    @activity.defn(name=Activity.START_BATCH)
    def start_batch(self, input: StartBatchInput) -> BatchPlan:
        return self.steps.start_batch(input)

    @activity.defn(name=Activity.INGEST_SOURCE)
    def ingest_source(self, input: IngestInput) -> IngestResult:
        details = activity.info().heartbeat_details
        resume_from = int(details[0]) if details else 0  # rows below it were committed by a prior attempt
        return self.steps.ingest_source(input, resume_from=resume_from, heartbeat=activity.heartbeat)

    @activity.defn(name=Activity.PROCESS_CHUNK)
    def process_chunk(self, input: ChunkInput) -> ChunkResult:
        if self.celery is not None:
            return self._on_celery(PROCESS_TASK, input)
        if self.cpu_pool is not None:
            result, report = self.cpu_pool.process_chunk(input, activity.heartbeat, self.steps.fail_chunk)
        else:
            result, report = self.steps.process_chunk_report(input, heartbeat=activity.heartbeat)
        self._record(report)
        return result

    @activity.defn(name=Activity.EVALUATE_CHUNK)
    def evaluate_chunk(self, input: ChunkInput) -> ChunkResult:
        if self.celery is not None:
            return self._on_celery(EVALUATE_TASK, input)
        if self.cpu_pool is not None and evaluates_in_pool(self.steps.settings):
            result, report = self.cpu_pool.evaluate_chunk(input, activity.heartbeat)
        else:
            result, report = self.steps.evaluate_chunk_report(input, heartbeat=activity.heartbeat)
        self._record(report)
        return result

    @activity.defn(name=Activity.REEVALUATE_PAGE)
    def reevaluate_page(self, input: ReevaluatePageInput) -> ReevaluatePageResult:
        return self.steps.reevaluate_page(input, heartbeat=activity.heartbeat)

    @activity.defn(name=Activity.FINISH_REEVALUATION)
    def finish_reevaluation(self, input: FinishReevaluationInput) -> None:
        self.steps.finish_reevaluation(input)

    def _on_celery(self, task: str, input: ChunkInput) -> ChunkResult:
        assert self.celery is not None
        result, reports = self.celery.run(task, input, activity.heartbeat)
        for report in reports:
            self._record(report)
        return result

    @activity.defn(name=Activity.FINISH_BATCH)
    def finish_batch(self, input: FinishBatchInput) -> BatchResult:
        result = self.steps.finish_batch(input)
        if self.metrics is not None:
            self.metrics.record_batch(result.status, self.steps.batch_seconds(input.batch_id))
        return result

    @activity.defn(name=Activity.CLOSE_CANCELLED_BATCH)
    def close_cancelled_batch(self, input: CancelledBatchInput) -> BatchResult:
        result = self.steps.close_cancelled_batch(input)
        if self.metrics is not None:
            self.metrics.record_batch(result.status, self.steps.batch_seconds(input.batch_id))
        return result

    @activity.defn(name=Activity.RECONCILE_BATCHES)
    async def reconcile_batches(self, input: ReconcileInput) -> ReconcileResult:
        """Async: it describes workflows with the worker's own Temporal client."""
        return await reconcile_batches(self.steps, activity.client(), input)

    @activity.defn(name=Activity.TALLY_BATCH)
    def tally_batch(self, batch_id: int) -> BatchTally:
        return self.steps.tally_batch(batch_id)

    @activity.defn(name=Activity.COMPENSATE_BATCH)
    def compensate_batch(self, input: BatchFailure) -> CompensationResult:
        return self.steps.compensate_batch(input)

    @activity.defn(name=Activity.RAISE_ALERT)
    def raise_alert(self, input: AlertInput) -> str:
        return self.steps.raise_alert(input)

    @activity.defn(name=Activity.AWAIT_DECISION)
    def await_decision(self, input: AwaitDecisionInput) -> None:
        self.steps.await_decision(input)

    @activity.defn(name=Activity.RECORD_DECISION)
    def record_decision(self, input: RecordDecisionInput) -> None:
        self.steps.record_decision(input)

    @activity.defn(name=Activity.PREPARE_RETRY)
    def prepare_retry(self, input: RetryInput) -> int:
        return self.steps.prepare_retry(input)

    @activity.defn(name=Activity.FAIL_CHUNK)
    def fail_chunk(self, input: ChunkFailureInput) -> int:
        return self.steps.fail_chunk(input)

    @activity.defn(name=Activity.CREATE_BATCH)
    def create_batch(self, input: CreateBatchInput) -> int:
        return create_scheduled_batch(self.steps, input)

    @activity.defn(name=Activity.CHECK_SLA)
    def check_sla(self, input: SlaCheckInput) -> SlaCheckResult:
        return check_sla(self.steps, input)

    def bookkeeping(self) -> list[Callable[..., Any]]:
        """The bookkeeping activities served on the ingestion queue."""
        return [
            self.start_batch,
            self.ingest_source,
            self.finish_batch,
            self.close_cancelled_batch,
            self.reconcile_batches,
            self.fail_chunk,
            self.tally_batch,
            self.compensate_batch,
            self.raise_alert,
            self.await_decision,
            self.record_decision,
            self.prepare_retry,
            self.create_batch,
            self.check_sla,
            self.finish_reevaluation,
        ]
