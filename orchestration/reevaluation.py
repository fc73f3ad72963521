"""The re-evaluation workflow: judge a scope of stored documents again with the current evaluator, a page at a
time on the evaluation queue, cancellable, with a bounded history however large the scope.

Each page is one activity (heartbeating per group of documents); the workflow continues as new every
`pages_per_run` pages (50), carrying its place (the last document id), so 100,000 documents never make one long
history. A page skips what this re-evaluation already stored, so a retry after a crash judges nothing twice.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from orchestration.constants import EVALUATION_QUEUE, INGESTION_QUEUE, Activity, Query
    from orchestration.policies import BOOKKEEPING_RETRY, BOOKKEEPING_TIMEOUT, CHUNK_RETRY
    from orchestration.types import (
        FinishReevaluationInput,
        ReevaluatePageInput,
        ReevaluatePageResult,
        ReevaluationInput,
        ReevaluationResult,
    )

PAGE_TIMEOUT = timedelta(minutes=30)
PAGE_RETRY: RetryPolicy = CHUNK_RETRY


@workflow.defn
class ReevaluationWorkflow:
    def __init__(self) -> None:
        self._done = 0

    @workflow.query(name=Query.PROGRESS)
    def progress(self) -> int:
        return self._done

    @workflow.run
    async def run(self, input: ReevaluationInput) -> ReevaluationResult:
        self._done = input.done
        after = input.after_id
        try:
            for _ in range(max(1, input.pages_per_run)):
                page: ReevaluatePageResult = await workflow.execute_activity(
                    Activity.REEVALUATE_PAGE,
                    ReevaluatePageInput(input.reevaluation_id, after),
                    result_type=ReevaluatePageResult,
                    task_queue=EVALUATION_QUEUE,
                    start_to_close_timeout=PAGE_TIMEOUT,
                    heartbeat_timeout=timedelta(seconds=input.heartbeat_seconds),
                    retry_policy=PAGE_RETRY,
                )
                self._done += page.evaluated
                after = page.last_id
                if page.finished:
                    return await self._finish(input.reevaluation_id, "completed")
        except (asyncio.CancelledError, Exception) as exc:
            # Cancelled by a person (the page in hand stops at its next heartbeat, and comes back as a
            # cancelled activity): what was stored stays, marked with this re-run; the row says how it ended.
            await self._finish(
                input.reevaluation_id, "cancelled" if is_cancelled_exception(exc) else "failed"
            )
            raise
        workflow.continue_as_new(
            ReevaluationInput(
                input.reevaluation_id, after, self._done, input.heartbeat_seconds, input.pages_per_run
            )
        )

    async def _finish(self, reevaluation_id: int, status: str) -> ReevaluationResult:
        await workflow.execute_activity(
            Activity.FINISH_REEVALUATION,
            FinishReevaluationInput(reevaluation_id, status),
            task_queue=INGESTION_QUEUE,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        return ReevaluationResult(reevaluation_id, status, self._done)
