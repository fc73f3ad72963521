"""The chunk-range child workflow: runs a share of a batch's chunks with a sliding window and continue-as-new.

Deterministic orchestration only; each chunk is one `process_chunk` and one `evaluate_chunk` activity, and a chunk
that gives up after its retries fails its unfinished documents alone (`fail_chunk`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from core.errors import ErrorType
    from orchestration.constants import (
        EVALUATION_QUEUE,
        INGESTION_QUEUE,
        PROCESSING_QUEUE,
        Activity,
    )
    from orchestration.policies import (
        BOOKKEEPING_RETRY,
        BOOKKEEPING_TIMEOUT,
        CHUNK_RETRY,
        CHUNK_TIMEOUT,
    )
    from orchestration.types import (
        ChunkFailureInput,
        ChunkInput,
        ChunkRangeInput,
        ChunkRangeResult,
        ChunkResult,
    )


# A cancelled chunk waits for its activity to stop (at its next heartbeat) so nothing is written after its batch
# was closed.
WAIT_FOR_ACTIVITY = workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED


def error_details(err: BaseException) -> tuple[str, str]:
    cause = err.cause if isinstance(err, ActivityError | ChildWorkflowError) else err
    if isinstance(cause, ApplicationError):
        return cause.type or ErrorType.APPLICATION_ERROR, cause.message
    return type(cause).__name__ if cause else type(err).__name__, str(cause or err)


@workflow.defn
class ChunkRangeWorkflow:
    """Runs chunks [first_chunk, end_chunk) of a batch, `window` at a time; continues as new when history grows.

    Cancelled (with its batch), it cancels its running chunks and waits until each activity has stopped (at its
    next heartbeat) or finished; no further step of a chunk starts.
    """

    def __init__(self) -> None:
        self._stopping = False

    @workflow.run
    async def run(self, input: ChunkRangeInput) -> ChunkRangeResult:
        pending: set[asyncio.Task[None]] = set()
        try:
            return await self._run(input, pending)
        except asyncio.CancelledError:
            self._stopping = True
            for task in pending:
                task.cancel()
            if pending:
                await workflow.wait(pending)
            raise

    async def _run(self, input: ChunkRangeInput, pending: set[asyncio.Task[None]]) -> ChunkRangeResult:
        next_chunk = input.first_chunk if input.next_chunk is None else input.next_chunk
        done = input.chunks_done
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
            finished, _ = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                pending.discard(task)
                task.result()
                done += 1
        return ChunkRangeResult(chunks_done=done)

    async def _run_chunk(self, input: ChunkRangeInput, chunk: int) -> None:
        start = chunk * input.chunk_size
        chunk_input = ChunkInput(
            batch_id=input.batch_id, start_seq=start, end_seq=min(start + input.chunk_size, input.total)
        )
        heartbeat = timedelta(seconds=input.heartbeat_seconds)
        try:
            await workflow.execute_activity(
                Activity.PROCESS_CHUNK,
                chunk_input,
                result_type=ChunkResult,
                task_queue=PROCESSING_QUEUE,
                start_to_close_timeout=CHUNK_TIMEOUT,
                heartbeat_timeout=heartbeat,
                retry_policy=CHUNK_RETRY,
                cancellation_type=WAIT_FOR_ACTIVITY,
            )
            if self._stopping:  # it finished although cancelled: store nothing more
                return
            await workflow.execute_activity(
                Activity.EVALUATE_CHUNK,
                chunk_input,
                result_type=ChunkResult,
                task_queue=EVALUATION_QUEUE,
                start_to_close_timeout=CHUNK_TIMEOUT,
                heartbeat_timeout=heartbeat,
                retry_policy=CHUNK_RETRY,
                cancellation_type=WAIT_FOR_ACTIVITY,
            )
        except ActivityError as err:
            if is_cancelled_exception(err) or self._stopping:
                raise  # stopped by a cancellation: its documents are not failures
            # The chunk gave up after its retries: its unfinished documents fail alone, with the reason.
            error_type, message = error_details(err)
            workflow.logger.warning("chunk %s of batch %s gave up: %s", chunk, input.batch_id, message)
            await workflow.execute_activity(
                Activity.FAIL_CHUNK,
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
