"""Temporal activities: thin wrappers over the batch steps that add heartbeats and resume points."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from temporalio import activity

from orchestration.types import (
    AlertInput,
    AwaitDecisionInput,
    BatchFailure,
    BatchPlan,
    BatchResult,
    BatchTally,
    ChunkFailureInput,
    ChunkInput,
    ChunkResult,
    CompensationResult,
    FinishBatchInput,
    IngestInput,
    IngestResult,
    RecordDecisionInput,
    RetryInput,
    StartBatchInput,
)
from workers.pool import process_chunk_in_pool
from workers.steps import BatchSteps


class PipelineActivities:
    """Registered as bound methods; the steps hold the clients (database, CPU pool, HTTP, evaluator)."""

    def __init__(self, steps: BatchSteps, cpu_pool: ProcessPoolExecutor | None = None) -> None:
        self.steps = steps
        self.cpu_pool = cpu_pool

    @activity.defn(name="start_batch")
    def start_batch(self, input: StartBatchInput) -> BatchPlan:
        return self.steps.start_batch(input)

    @activity.defn(name="ingest_source")
    def ingest_source(self, input: IngestInput) -> IngestResult:
        details = activity.info().heartbeat_details
        resume_from = int(details[0]) if details else 0  # rows below it were committed by a prior attempt
        return self.steps.ingest_source(input, resume_from=resume_from, heartbeat=activity.heartbeat)

    @activity.defn(name="process_chunk")
    def process_chunk(self, input: ChunkInput) -> ChunkResult:
        if self.cpu_pool is not None:
            return process_chunk_in_pool(self.cpu_pool, input, activity.heartbeat)
        return self.steps.process_chunk(input, heartbeat=activity.heartbeat)

    @activity.defn(name="evaluate_chunk")
    def evaluate_chunk(self, input: ChunkInput) -> ChunkResult:
        return self.steps.evaluate_chunk(input, heartbeat=activity.heartbeat)

    @activity.defn(name="finish_batch")
    def finish_batch(self, input: FinishBatchInput) -> BatchResult:
        return self.steps.finish_batch(input)

    @activity.defn(name="tally_batch")
    def tally_batch(self, batch_id: int) -> BatchTally:
        return self.steps.tally_batch(batch_id)

    @activity.defn(name="compensate_batch")
    def compensate_batch(self, input: BatchFailure) -> CompensationResult:
        return self.steps.compensate_batch(input)

    @activity.defn(name="raise_alert")
    def raise_alert(self, input: AlertInput) -> str:
        return self.steps.raise_alert(input)

    @activity.defn(name="await_decision")
    def await_decision(self, input: AwaitDecisionInput) -> None:
        self.steps.await_decision(input)

    @activity.defn(name="record_decision")
    def record_decision(self, input: RecordDecisionInput) -> None:
        self.steps.record_decision(input)

    @activity.defn(name="prepare_retry")
    def prepare_retry(self, input: RetryInput) -> int:
        return self.steps.prepare_retry(input)

    @activity.defn(name="fail_chunk")
    def fail_chunk(self, input: ChunkFailureInput) -> int:
        return self.steps.fail_chunk(input)

    def bookkeeping(self) -> list[Callable[..., Any]]:
        """The bookkeeping activities served on the ingestion queue."""
        return [
            self.start_batch,
            self.ingest_source,
            self.finish_batch,
            self.fail_chunk,
            self.tally_batch,
            self.compensate_batch,
            self.raise_alert,
            self.await_decision,
            self.record_decision,
            self.prepare_retry,
        ]
