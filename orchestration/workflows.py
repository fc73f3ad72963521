"""The batch workflow and its chunk-range children: orchestration only, deterministic, IDs and ranges only.

A batch is ingested by one activity, then split into chunks of documents; each chunk is one `process_chunk`
activity (normalize, extract, clarify) and one `evaluate_chunk` activity (evaluate, store). Chunk-range child
workflows run the chunks with a sliding window and continue-as-new, so every history stays small and no workflow
has more than `chunk_window` pending activities, whatever the batch's size.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from orchestration.constants import (
        CHUNK_RANGE_WORKFLOW_ID,
        ERR_INVALID_SOURCE,
        EVALUATION_QUEUE,
        INGESTION_QUEUE,
        PROCESSING_QUEUE,
        SA_BATCH_ID,
        SA_BATCH_STATE,
        SA_DOCUMENTS,
        SA_SOURCE_ID,
        STATE_COMPLETED,
        STATE_FAILED,
        STATE_INGESTING,
        STATE_PROCESSING,
    )
    from orchestration.types import (
        BatchInput,
        BatchPlan,
        BatchProgress,
        BatchResult,
        ChunkFailureInput,
        ChunkInput,
        ChunkRangeInput,
        ChunkRangeResult,
        ChunkResult,
        FinishBatchInput,
        IngestInput,
        IngestResult,
        StartBatchInput,
    )

# Bookkeeping activities: short database writes.
BOOKKEEPING_TIMEOUT = timedelta(minutes=1)
BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))

# Ingest: 3 attempts, 30 s apart at first, at most 10 min apart; a source that can never work is not retried.
INGEST_TIMEOUT = timedelta(hours=2)
INGEST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=30),
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=3,
    non_retryable_error_types=[ERR_INVALID_SOURCE],
)

# Per-artifact work: a chunk's activity may take up to 30 min; transient failures are retried with backoff.
# Documents that can never succeed do not raise: they are recorded as failed inside the chunk.
CHUNK_TIMEOUT = timedelta(minutes=30)
CHUNK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=8,
    non_retryable_error_types=["EvaluatorConfigError"],
)


def _error_details(err: BaseException) -> tuple[str, str]:
    cause = err.cause if isinstance(err, ActivityError | ChildWorkflowError) else err
    if isinstance(cause, ApplicationError):
        return cause.type or "ApplicationError", cause.message
    return type(cause).__name__ if cause else type(err).__name__, str(cause or err)


@workflow.defn
class BatchWorkflow:
    """One refresh of one source: ingest, process every chunk (through children), finalize in the library."""

    def __init__(self) -> None:
        self._batch_id = 0
        self._state = STATE_INGESTING
        self._total = 0
        self._chunks_total = 0
        self._chunks_done = 0

    @workflow.query
    def progress(self) -> BatchProgress:
        return BatchProgress(
            batch_id=self._batch_id,
            state=self._state,
            total=self._total,
            chunks_total=self._chunks_total,
            chunks_done=self._chunks_done,
        )

    def _set_state(self, state: str) -> None:
        self._state = state
        workflow.upsert_search_attributes(
            [SA_BATCH_STATE.value_set(state), SA_DOCUMENTS.value_set(self._total)]
        )

    @workflow.run
    async def run(self, input: BatchInput) -> BatchResult:
        self._batch_id = input.batch_id
        workflow.upsert_search_attributes(
            [SA_BATCH_ID.value_set(str(input.batch_id)), SA_SOURCE_ID.value_set(str(input.source_id))]
        )
        self._set_state(STATE_INGESTING)
        plan = await workflow.execute_activity(
            "start_batch",
            StartBatchInput(batch_id=input.batch_id, workflow_id=workflow.info().workflow_id),
            result_type=BatchPlan,
            task_queue=INGESTION_QUEUE,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        try:
            ingest = await workflow.execute_activity(
                "ingest_source",
                IngestInput(batch_id=input.batch_id),
                result_type=IngestResult,
                task_queue=INGESTION_QUEUE,
                start_to_close_timeout=INGEST_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=max(plan.heartbeat_seconds, 60)),
                retry_policy=INGEST_RETRY,
            )
        except ActivityError as err:
            error_type, message = _error_details(err)
            return await self._fail(input.batch_id, "ingest", error_type, message)

        self._total = ingest.total
        self._set_state(STATE_PROCESSING)
        try:
            await self._process_chunks(input.batch_id, plan)
        except ChildWorkflowError as err:
            error_type, message = _error_details(err)
            return await self._fail(input.batch_id, "processing", error_type, message)

        result = await workflow.execute_activity(
            "finish_batch",
            FinishBatchInput(batch_id=input.batch_id, status="completed"),
            result_type=BatchResult,
            task_queue=INGESTION_QUEUE,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        self._set_state(STATE_COMPLETED)
        return result

    async def _process_chunks(self, batch_id: int, plan: BatchPlan) -> None:
        chunks = -(-self._total // plan.chunk_size)
        self._chunks_total = chunks
        starts = list(range(0, chunks, plan.chunks_per_child))
        pending: set[asyncio.Task[ChunkRangeResult]] = set()
        for first in starts:
            while len(pending) >= plan.max_children:
                pending = await self._reap(pending)
            child_input = ChunkRangeInput(
                batch_id=batch_id,
                total=self._total,
                chunk_size=plan.chunk_size,
                first_chunk=first,
                end_chunk=min(first + plan.chunks_per_child, chunks),
                window=plan.chunk_window,
                heartbeat_seconds=plan.heartbeat_seconds,
            )
            pending.add(
                asyncio.ensure_future(
                    workflow.execute_child_workflow(
                        ChunkRangeWorkflow.run,
                        child_input,
                        id=CHUNK_RANGE_WORKFLOW_ID.format(
                            parent_id=workflow.info().workflow_id, first_chunk=first
                        ),
                    )
                )
            )
        while pending:
            pending = await self._reap(pending)

    async def _reap(
        self, pending: set[asyncio.Task[ChunkRangeResult]]
    ) -> set[asyncio.Task[ChunkRangeResult]]:
        done, still = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            self._chunks_done += task.result().chunks_done
        return set(still)

    async def _fail(self, batch_id: int, stage: str, error_type: str, message: str) -> BatchResult:
        await workflow.execute_activity(
            "finish_batch",
            FinishBatchInput(
                batch_id=batch_id, status="failed", error_type=error_type, error_message=f"{stage}: {message}"
            ),
            result_type=BatchResult,
            task_queue=INGESTION_QUEUE,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        self._set_state(STATE_FAILED)
        raise ApplicationError(
            f"batch {batch_id} failed at {stage}: {message}", type=error_type, non_retryable=True
        )


@workflow.defn
class ChunkRangeWorkflow:
    """Runs chunks [first_chunk, end_chunk) of a batch, `window` at a time; continues as new when history grows."""

    @workflow.run
    async def run(self, input: ChunkRangeInput) -> ChunkRangeResult:
        next_chunk = input.first_chunk if input.next_chunk is None else input.next_chunk
        done = input.chunks_done
        pending: set[asyncio.Task[None]] = set()
        while True:
            suggested = workflow.info().is_continue_as_new_suggested()
            while not suggested and next_chunk < input.end_chunk and len(pending) < input.window:
                pending.add(asyncio.ensure_future(self._run_chunk(input, next_chunk)))
                next_chunk += 1
            if not pending:
                if next_chunk < input.end_chunk:  # history is getting long: drained, so start afresh
                    input.next_chunk = next_chunk
                    input.chunks_done = done
                    workflow.continue_as_new(input)
                break
            finished, still = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                task.result()
                done += 1
            pending = set(still)
        return ChunkRangeResult(chunks_done=done)

    async def _run_chunk(self, input: ChunkRangeInput, chunk: int) -> None:
        start = chunk * input.chunk_size
        chunk_input = ChunkInput(
            batch_id=input.batch_id, start_seq=start, end_seq=min(start + input.chunk_size, input.total)
        )
        heartbeat = timedelta(seconds=input.heartbeat_seconds)
        try:
            await workflow.execute_activity(
                "process_chunk",
                chunk_input,
                result_type=ChunkResult,
                task_queue=PROCESSING_QUEUE,
                start_to_close_timeout=CHUNK_TIMEOUT,
                heartbeat_timeout=heartbeat,
                retry_policy=CHUNK_RETRY,
            )
            await workflow.execute_activity(
                "evaluate_chunk",
                chunk_input,
                result_type=ChunkResult,
                task_queue=EVALUATION_QUEUE,
                start_to_close_timeout=CHUNK_TIMEOUT,
                heartbeat_timeout=heartbeat,
                retry_policy=CHUNK_RETRY,
            )
        except ActivityError as err:
            # The chunk gave up after its retries: its unfinished documents fail alone, with the reason.
            error_type, message = _error_details(err)
            workflow.logger.warning("chunk %s of batch %s gave up: %s", chunk, input.batch_id, message)
            await workflow.execute_activity(
                "fail_chunk",
                ChunkFailureInput(
                    batch_id=input.batch_id,
                    start_seq=chunk_input.start_seq,
                    end_seq=chunk_input.end_seq,
                    reason=f"{error_type}: {message}",
                ),
                task_queue=INGESTION_QUEUE,
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                retry_policy=BOOKKEEPING_RETRY,
            )
