"""Temporal activities: thin wrappers over the batch steps that add heartbeats and resume points."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from temporalio import activity

from orchestration.types import (
    BatchPlan,
    BatchResult,
    ChunkFailureInput,
    ChunkInput,
    ChunkResult,
    FinishBatchInput,
    IngestInput,
    IngestResult,
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

    @activity.defn(name="fail_chunk")
    def fail_chunk(self, input: ChunkFailureInput) -> int:
        return self.steps.fail_chunk(input)
