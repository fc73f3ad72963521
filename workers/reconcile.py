"""The reconciler: a batch whose workflow ended without closing its row (terminated, timed out or failed in
Temporal's UI or CLI) never stays "running". The SLA monitor runs it every round; `loreguard reconcile` too."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from core.settings import Settings
from core.vocabulary import BatchStatus
from data import repository
from orchestration.types import ReconcileInput, ReconcileResult
from workers.steps import BatchSteps

DESCRIBE_TIMEOUT = timedelta(seconds=5)

# What an ended workflow makes of a batch still marked in flight: its status, and the words said why.
ENDED = {
    WorkflowExecutionStatus.CANCELED: (BatchStatus.CANCELLED, "cancelled in Temporal (UI or CLI)"),
    WorkflowExecutionStatus.TERMINATED: (BatchStatus.CANCELLED, "terminated in Temporal (UI or CLI)"),
    WorkflowExecutionStatus.TIMED_OUT: (BatchStatus.FAILED, "its workflow timed out in Temporal"),
    WorkflowExecutionStatus.FAILED: (BatchStatus.FAILED, "its workflow failed in Temporal"),
}


async def reconcile_batches(steps: BatchSteps, client: Client, input: ReconcileInput) -> ReconcileResult:
    """Describe the workflow of every batch in flight; close the rows of those that ended."""
    rows = await asyncio.to_thread(_in_flight, steps, input.limit)
    closed: list[str] = []
    for batch_id, workflow_id in rows:
        # a scheduled batch not started yet names its scheduled run ("workflow id/run id")
        run_of_schedule = "/" in workflow_id
        wf_id, _, run_id = workflow_id.partition("/")
        try:
            described = await client.get_workflow_handle(wf_id, run_id=run_id or None).describe(
                rpc_timeout=DESCRIBE_TIMEOUT
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue  # past the namespace's retention, or another namespace's: nothing to learn here
            raise
        ended = ENDED.get(described.status) if described.status is not None else None
        if ended is None:
            continue  # running, or completed (which closed its row itself)
        status, why = ended
        if run_of_schedule:
            why = f"its scheduled run was {why.removeprefix('its workflow ')} before the batch started"
        when = f" at {described.close_time:%Y-%m-%d %H:%M:%S} UTC" if described.close_time else ""
        message = f"{why}{when}; LoreGuard closed the batch when it noticed"
        if await asyncio.to_thread(_close, steps.settings, steps, batch_id, status, message):
            closed.append(f"batch {batch_id}: {status} ({why})")
    return ReconcileResult(checked=len(rows), closed=closed)


def _in_flight(steps: BatchSteps, limit: int) -> list[tuple[int, str]]:
    with steps.sessions() as session:
        return repository.started_in_flight(session, limit=limit)


def _close(settings: Settings, steps: BatchSteps, batch_id: int, status: str, message: str) -> bool:
    with steps._tx() as session:
        return repository.close_ended_batch(
            session,
            batch_id=batch_id,
            status=status,
            message=message,
            target_hours=settings.sla_target_hours,
            zone=settings.timezone,
        )
