"""Workflows started by Temporal Schedules: a source's scheduled refresh and the SLA monitor.

Deterministic orchestration only: the batch row and the SLA check are activities; IDs come from workflow.uuid4().
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from orchestration.constants import (
        BATCH_EXECUTION_TIMEOUT,
        INGESTION_QUEUE,
        SCHEDULER_QUEUE,
        Activity,
        batch_search_attributes,
        batch_workflow_id,
    )
    from orchestration.policies import BOOKKEEPING_RETRY, BOOKKEEPING_TIMEOUT, SLA_CHECK_TIMEOUT
    from orchestration.types import (
        BatchInput,
        BatchResult,
        CreateBatchInput,
        ReconcileInput,
        ReconcileResult,
        ScheduledRefreshInput,
        ScheduledRefreshResult,
        SlaCheckInput,
        SlaCheckResult,
        SlaMonitorInput,
    )


# Monitor runs recorded before the reconciler replay without it.
PATCH_RECONCILE = "reconcile-batches"


@workflow.defn
class ScheduledRefreshWorkflow:
    """A source's schedule action: create the batch row (trigger "schedule"), then run the batch as a child.

    It waits for the batch, so the schedule's overlap policy (skip) holds back the next refresh of the source
    while this one is in flight.
    """

    @workflow.run
    async def run(self, input: ScheduledRefreshInput) -> ScheduledRefreshResult:
        info = workflow.info()
        batch_id: int = await workflow.execute_activity(
            Activity.CREATE_BATCH,
            CreateBatchInput(source_id=input.source_id, key=f"{info.workflow_id}/{info.run_id}"),
            result_type=int,
            task_queue=INGESTION_QUEUE,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        if batch_id == 0:  # the source is paused in the database
            return ScheduledRefreshResult(batch_id=0, workflow_id="", status="skipped: source paused")
        child_id = batch_workflow_id(batch_id, workflow.uuid4().hex)
        try:
            result: BatchResult = await workflow.execute_child_workflow(
                "BatchWorkflow",
                BatchInput(batch_id=batch_id, source_id=input.source_id),
                id=child_id,
                task_queue=SCHEDULER_QUEUE,
                execution_timeout=BATCH_EXECUTION_TIMEOUT,
                result_type=BatchResult,
                search_attributes=batch_search_attributes(batch_id=batch_id, source_id=input.source_id),
            )
        except ChildWorkflowError as err:
            if not is_cancelled_exception(err) or workflow.cancellation_reason() is not None:
                raise
            # The batch alone was cancelled (by an operator): this scheduled run is over, not failed.
            return ScheduledRefreshResult(batch_id=batch_id, workflow_id=child_id, status="cancelled")
        return ScheduledRefreshResult(batch_id=batch_id, workflow_id=child_id, status=result.status)


@workflow.defn
class SlaMonitorWorkflow:
    """The SLA monitor's schedule action: close the rows of batches whose workflow ended outside LoreGuard,
    then check every batch in flight, raise due alerts once, resolve ended ones."""

    @workflow.run
    async def run(self, input: SlaMonitorInput) -> list[SlaCheckResult]:
        results: list[SlaCheckResult] = []
        for round_no in range(max(1, input.rounds)):
            if round_no:
                await workflow.sleep(timedelta(seconds=input.every_seconds))
            if workflow.patched(PATCH_RECONCILE):
                # Batches whose workflow ended outside LoreGuard are closed first, so no check counts them.
                await workflow.execute_activity(
                    Activity.RECONCILE_BATCHES,
                    ReconcileInput(),
                    result_type=ReconcileResult,
                    task_queue=INGESTION_QUEUE,
                    start_to_close_timeout=SLA_CHECK_TIMEOUT,
                    retry_policy=BOOKKEEPING_RETRY,
                )
            results.append(
                await workflow.execute_activity(
                    Activity.CHECK_SLA,
                    SlaCheckInput(now_iso=workflow.now().isoformat()),
                    result_type=SlaCheckResult,
                    task_queue=INGESTION_QUEUE,
                    start_to_close_timeout=SLA_CHECK_TIMEOUT,
                    retry_policy=BOOKKEEPING_RETRY,
                )
            )
        return results
