"""The batch workflow and its chunk-range children: orchestration only, deterministic, IDs and ranges only.

A batch is ingested by one activity, then split into chunks of documents; each chunk is one `process_chunk`
activity (normalize, extract, clarify) and one `evaluate_chunk` activity (evaluate, store). Chunk-range child
workflows run the chunks with a sliding window and continue-as-new, so every history stays small and no workflow
has more than `chunk_window` pending activities, whatever the batch's size.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from core.errors import ErrorType
    from core.vocabulary import Decision
    from orchestration.chunks import ChunkRangeWorkflow, error_details
    from orchestration.constants import (
        CHUNK_RANGE_WORKFLOW_ID,
        INGESTION_QUEUE,
        SA_ATTEMPT,
        SA_BATCH_ID,
        SA_BATCH_STATE,
        SA_DOCUMENTS,
        SA_SOURCE_ID,
        STATE_AWAITING_APPROVAL,
        STATE_CANCELLED,
        STATE_COMPLETED,
        STATE_FAILED,
        STATE_INGESTING,
        STATE_PROCESSING,
        STATE_RETRYING,
        Activity,
        Query,
        Update,
    )
    from orchestration.policies import (
        BOOKKEEPING_RETRY,
        BOOKKEEPING_TIMEOUT,
        INGEST_RETRY,
        INGEST_TIMEOUT,
        MIN_CHUNK_HEARTBEAT,
    )
    from orchestration.types import (
        AlertInput,
        AwaitDecisionInput,
        BatchFailure,
        BatchInput,
        BatchPlan,
        BatchProgress,
        BatchResult,
        BatchTally,
        CancelledBatchInput,
        ChunkRangeInput,
        ChunkRangeResult,
        CompensationResult,
        DecisionInput,
        DecisionResult,
        FinishBatchInput,
        IngestInput,
        IngestResult,
        RecordDecisionInput,
        RetryInput,
        StartBatchInput,
    )

T = TypeVar("T")

# Histories recorded before an accepted approval moved the batch to `retrying` at once replay without it.
PATCH_RETRYING_ON_APPROVAL = "retrying-on-approval"


@workflow.defn
class BatchWorkflow:
    """One refresh of one source: ingest, process every chunk (through children), finalize in the library.

    A failed attempt (ingest gave up, or too many documents failed) is compensated, operators are notified,
    and the workflow waits for a decision: `approve_retry` runs the next attempt over what failed,
    `reject` (or no decision before the timeout) ends the batch failed with the reason.

    Cancelling the workflow (an operator's cancel, or Temporal's UI or CLI) cancels its children and running
    activities (each stops at its next heartbeat, and the workflow waits for them), then closes the batch
    cancelled with what it stored kept.
    """

    def __init__(self) -> None:
        self._batch_id = 0
        self._state = STATE_INGESTING
        self._total = 0
        self._chunks_total = 0
        self._chunks_done = 0
        self._attempt = 1
        self._awaiting = False
        self._decision: tuple[str, DecisionInput] | None = None
        self._closing = False  # cancelled: closing the batch's row

    @workflow.query(name=Query.PROGRESS)
    def progress(self) -> BatchProgress:
        return BatchProgress(
            batch_id=self._batch_id,
            state=self._state,
            total=self._total,
            chunks_total=self._chunks_total,
            chunks_done=self._chunks_done,
            attempt=self._attempt,
        )

    # --- operator decisions (Temporal Updates: the caller learns at once whether it was accepted) --------

    @workflow.update(name=Update.APPROVE_RETRY)
    def approve_retry(self, input: DecisionInput) -> DecisionResult:
        self._decision = (Decision.APPROVED, input)
        if workflow.patched(PATCH_RETRYING_ON_APPROVAL):
            # Leave "awaiting approval" as the Update is accepted, not after record_decision/prepare_retry:
            # whoever looks next (query, search attribute, a second operator) sees the batch is no longer waiting.
            self._awaiting = False
            self._set_state(STATE_RETRYING)
        return DecisionResult(
            batch_id=self._batch_id,
            decision=Decision.APPROVED,
            attempt=self._attempt + 1,
            message=f"batch {self._batch_id} will be retried (attempt {self._attempt + 1})",
        )

    @approve_retry.validator
    def _check_approve(self, input: DecisionInput) -> None:
        self._check_decision(input, needs_reason=False)

    @workflow.update(name=Update.REJECT)
    def reject(self, input: DecisionInput) -> DecisionResult:
        self._decision = (Decision.REJECTED, input)
        return DecisionResult(
            batch_id=self._batch_id,
            decision=Decision.REJECTED,
            attempt=self._attempt,
            message=f"batch {self._batch_id} rejected: it ends failed",
        )

    @reject.validator
    def _check_reject(self, input: DecisionInput) -> None:
        self._check_decision(input, needs_reason=True)

    def _check_decision(self, input: DecisionInput, *, needs_reason: bool) -> None:
        if not input.actor.strip():
            raise ValueError("a decision needs the operator's name")
        if self._decision is not None:
            decision, by = self._decision
            raise ValueError(f"batch {self._batch_id} was already {decision} by {by.actor}")
        if not self._awaiting:
            raise ValueError(f"batch {self._batch_id} is not waiting for a decision (it is {self._state})")
        if needs_reason and not input.reason.strip():
            raise ValueError("a rejection needs a reason")

    # --- the run ------------------------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self._state = state
        workflow.upsert_search_attributes(
            [
                SA_BATCH_STATE.value_set(state),
                SA_DOCUMENTS.value_set(self._total),
                SA_ATTEMPT.value_set(self._attempt),
            ]
        )

    @workflow.run
    async def run(self, input: BatchInput) -> BatchResult:
        self._batch_id = input.batch_id
        try:
            return await self._run(input)
        except BaseException as err:  # asyncio.CancelledError is not an Exception
            if not is_cancelled_exception(err) or workflow.cancellation_reason() is None:
                raise
            # Cancelled: everything it started has stopped by now; close the row, then end cancelled.
            self._closing = True
            self._awaiting = False
            reason = workflow.cancellation_reason()
            how = f"cancelled ({reason})" if reason else "cancelled in Temporal (UI or CLI)"
            await self._bookkeeping(
                Activity.CLOSE_CANCELLED_BATCH,
                CancelledBatchInput(batch_id=input.batch_id, how=how),
                BatchResult,
            )
            self._set_state(STATE_CANCELLED)
            raise

    def _stop_if_cancelled(self) -> None:
        """A cancellation that arrived while an activity finished anyway is not lost: stop before the next step."""
        if not self._closing and workflow.cancellation_reason() is not None:
            raise asyncio.CancelledError("the batch workflow was cancelled")

    async def _run(self, input: BatchInput) -> BatchResult:
        workflow.upsert_search_attributes(
            [SA_BATCH_ID.value_set(str(input.batch_id)), SA_SOURCE_ID.value_set(str(input.source_id))]
        )
        self._set_state(STATE_INGESTING)
        plan = await self._bookkeeping(
            Activity.START_BATCH,
            StartBatchInput(batch_id=input.batch_id, workflow_id=workflow.info().workflow_id),
            BatchPlan,
        )
        ingest = True
        while True:
            failure = await self._run_attempt(plan, ingest=ingest)
            if failure is None:
                result = await self._bookkeeping(
                    Activity.FINISH_BATCH,
                    FinishBatchInput(batch_id=input.batch_id, status="completed"),
                    BatchResult,
                )
                self._set_state(STATE_COMPLETED)
                return result
            decision, by = await self._fail_and_wait(plan, failure)
            if decision != Decision.APPROVED:
                await self._bookkeeping(
                    Activity.FINISH_BATCH,
                    FinishBatchInput(
                        batch_id=input.batch_id,
                        status="failed",
                        error_type=failure.error_type,
                        error_message=f"{failure.stage}: {failure.message} ({decision} by {by.actor}: {by.reason})",
                    ),
                    BatchResult,
                )
                self._set_state(STATE_FAILED)
                raise ApplicationError(
                    f"batch {input.batch_id} failed at {failure.stage}: {failure.message}; "
                    f"{decision} by {by.actor}: {by.reason}",
                    type=ErrorType.BATCH_REJECTED,
                    non_retryable=True,
                )
            self._attempt += 1
            await self._bookkeeping(
                Activity.PREPARE_RETRY,
                RetryInput(batch_id=input.batch_id, stage=failure.stage, attempt=self._attempt),
                int,
            )
            ingest = failure.stage == "ingest"

    async def _run_attempt(self, plan: BatchPlan, *, ingest: bool) -> BatchFailure | None:
        """One attempt over the batch; returns why it failed, or None when it succeeded."""
        if ingest:
            self._set_state(STATE_INGESTING)
            try:
                result = await workflow.execute_activity(
                    Activity.INGEST_SOURCE,
                    IngestInput(batch_id=self._batch_id),
                    result_type=IngestResult,
                    task_queue=INGESTION_QUEUE,
                    start_to_close_timeout=INGEST_TIMEOUT,
                    heartbeat_timeout=max(timedelta(seconds=plan.heartbeat_seconds), MIN_CHUNK_HEARTBEAT),
                    retry_policy=INGEST_RETRY,
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise
                return self._failure("ingest", *error_details(err))
            self._stop_if_cancelled()
            self._total = result.total
        self._set_state(STATE_PROCESSING)
        try:
            await self._process_chunks(self._batch_id, plan)
        except ChildWorkflowError as err:  # a child cancelled on its own (the Temporal UI) fails the attempt
            return self._failure("processing", *error_details(err))
        tally = await self._bookkeeping(Activity.TALLY_BATCH, self._batch_id, BatchTally)
        if tally.total and tally.failed / tally.total > plan.max_failed_share:
            return self._failure(
                "processing",
                ErrorType.TOO_MANY_FAILURES,
                f"{tally.failed} of {tally.total} documents failed, more than the "
                f"{plan.max_failed_share:.0%} allowed",
            )
        return None

    def _failure(self, stage: str, error_type: str, message: str) -> BatchFailure:
        return BatchFailure(
            batch_id=self._batch_id,
            attempt=self._attempt,
            stage=stage,
            error_type=error_type,
            message=message,
        )

    async def _fail_and_wait(self, plan: BatchPlan, failure: BatchFailure) -> tuple[str, DecisionInput]:
        """Compensate, notify, and wait for an operator's decision (a timeout counts as a rejection)."""
        compensation = await self._bookkeeping(Activity.COMPENSATE_BATCH, failure, CompensationResult)
        timeout = timedelta(hours=plan.approval_timeout_hours)
        deadline = workflow.now() + timeout
        await self._bookkeeping(
            Activity.AWAIT_DECISION,
            AwaitDecisionInput(
                failure=failure, compensation=compensation.summary, deadline_iso=deadline.isoformat()
            ),
            type(None),
        )
        # The last decision stands until this new wait: someone deciding during the retry it started is told
        # who decided, not merely that nothing is waiting.
        self._decision = None
        self._awaiting = True
        self._set_state(STATE_AWAITING_APPROVAL)
        await self._bookkeeping(
            Activity.RAISE_ALERT,
            AlertInput(
                batch_id=self._batch_id,
                kind=f"batch_failed:attempt-{self._attempt}",
                level="error",
                message=(
                    f"Batch {self._batch_id} failed at {failure.stage} (attempt {self._attempt}): "
                    f"{failure.error_type}: {failure.message}. Compensation: {compensation.summary}. "
                    f"Approve a retry or reject it before {deadline:%Y-%m-%d %H:%M} UTC."
                ),
            ),
            str,
        )
        with contextlib.suppress(TimeoutError):  # no decision in time: handled below as a rejection
            await workflow.wait_condition(lambda: self._decision is not None, timeout=timeout)
        self._awaiting = False
        if self._decision is not None:
            decision, by = self._decision
        else:
            hours = f"{plan.approval_timeout_hours:g}"
            decision, by = (
                Decision.TIMED_OUT,
                DecisionInput(actor="system", reason=f"no decision within {hours} h"),
            )
        await self._bookkeeping(
            Activity.RECORD_DECISION,
            RecordDecisionInput(
                batch_id=self._batch_id,
                decision=decision,
                actor=by.actor,
                reason=by.reason,
                attempt=self._attempt,
            ),
            type(None),
        )
        return decision, by

    async def _bookkeeping(self, activity: str, arg: Any, result_type: type[T]) -> T:
        result: T = await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            task_queue=INGESTION_QUEUE,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
            # a cancellation waits for the write in progress to finish: the row is closed after it, never before
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        self._stop_if_cancelled()
        return result

    async def _run_children(
        self, batch_id: int, plan: BatchPlan, pending: set[asyncio.Task[ChunkRangeResult]]
    ) -> None:
        chunks = -(-self._total // plan.chunk_size)
        self._chunks_total = chunks
        self._chunks_done = 0
        for first in range(0, chunks, plan.chunks_per_child):
            while len(pending) >= plan.max_children:
                await self._reap(pending)
            child_input = ChunkRangeInput(
                batch_id=batch_id,
                total=self._total,
                chunk_size=plan.chunk_size,
                first_chunk=first,
                end_chunk=min(first + plan.chunks_per_child, chunks),
                window=plan.chunk_window,
                heartbeat_seconds=plan.heartbeat_seconds,
            )
            parent = workflow.info().workflow_id
            if self._attempt > 1:
                parent = f"{parent}-attempt-{self._attempt}"
            pending.add(
                asyncio.ensure_future(
                    workflow.execute_child_workflow(
                        ChunkRangeWorkflow.run,
                        child_input,
                        id=CHUNK_RANGE_WORKFLOW_ID.format(parent_id=parent, first_chunk=first),
                    )
                )
            )
        while pending:
            await self._reap(pending)
            self._stop_if_cancelled()

    async def _process_chunks(self, batch_id: int, plan: BatchPlan) -> None:
        pending: set[asyncio.Task[ChunkRangeResult]] = set()
        try:
            await self._run_children(batch_id, plan, pending)
        except asyncio.CancelledError:
            # Cancel every child still running and wait until each has stopped its activities.
            for task in pending:
                task.cancel()
            if pending:
                await workflow.wait(pending)
            raise

    async def _reap(self, pending: set[asyncio.Task[ChunkRangeResult]]) -> None:
        """Wait for the next child to finish; it leaves `pending` (which the caller can still cancel)."""
        done, _ = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            pending.discard(task)
            self._chunks_done += task.result().chunks_done
