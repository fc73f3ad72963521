"""Cancelling batches on a real Temporal dev server with a real worker and SQLite: through the operations layer
(children cancelled, activities stopped, what was stored kept and said), from Temporal itself, and reconciled
after a workflow was terminated outside LoreGuard.

A clarification service that answers slowly (a stand-in on loopback) keeps each batch running long enough to
act on it; every wait is on a condition, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.worker import Replayer

from core.roles import Role
from core.settings import Settings
from core.vocabulary import ArtifactStatus, BatchStatus
from data import repository
from data.models import Alert, Artifact, AuditEvent, Batch
from operations import Actor, NotAccepted
from operations import cancellation as cancel_ops
from orchestration.chunks import ChunkRangeWorkflow
from orchestration.constants import SCHEDULER_QUEUE
from orchestration.scheduled import ScheduledRefreshWorkflow, SlaMonitorWorkflow
from orchestration.types import ScheduledRefreshInput, SlaMonitorInput
from orchestration.workflows import BatchWorkflow
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings, running_worker
from tests.support.corpus import write_corpus
from tests.support.http_standins import ClarificationStandIn
from tests.support.operations import context, start_refresh

pytestmark = pytest.mark.temporal

OPERATOR = Actor("olga.operator@example.org", frozenset({Role.OPERATOR}))
DOCUMENTS = 240


def slow_settings(db_url: str, namespace: TemporalNamespace, clarifier: ClarificationStandIn) -> Settings:
    return pipeline_settings(
        db_url,
        namespace,
        evaluator="keywords",
        clarification_url=clarifier.endpoint,
        chunk_size=4,
        chunks_per_child=3,  # several children, so cancelling the batch must reach each of them
        cancel_check_seconds=0.5,
    )


def add_folder(sessions: sessionmaker[Session], folder: Path, name: str) -> int:
    with sessions.begin() as session:
        return repository.create_source(session, name=name, kind="folder", location=str(folder)).id


def stored(sessions: sessionmaker[Session], batch_id: int) -> int:
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    Artifact.batch_id == batch_id, Artifact.status == ArtifactStatus.STORED
                )
            )
            or 0
        )


async def until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(condition):
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


def batch_of(sessions: sessionmaker[Session], batch_id: int) -> Batch:
    with sessions() as session:
        batch = repository.get_batch(session, batch_id=batch_id)
        session.expunge(batch)
        return batch


async def test_an_operator_cancels_a_running_batch_its_children_stop_and_its_stored_documents_stay(
    namespace: TemporalNamespace, sqlite_url: str, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    folder = tmp_path / "wrong-share"
    write_corpus(folder, DOCUMENTS)
    source_id = add_folder(sqlite_sessions, folder, "wrong share")
    client = await namespace.connect()
    with ClarificationStandIn(delay=0.05) as clarifier:
        async with running_worker(client, slow_settings(sqlite_url, namespace, clarifier)):
            batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
            await until(lambda: stored(sqlite_sessions, batch_id) >= 8, "documents stored")

            ctx = context(client, sqlite_sessions)
            done = await asyncio.to_thread(
                cancel_ops.cancel, OPERATOR, ctx, batch_id, reason="registered the wrong share"
            )
            assert "keeps what it stored" in done.message
            with pytest.raises(WorkflowFailureError) as ended:
                await handle.result()
            assert isinstance(ended.value.cause, CancelledError)
            assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

            # Every chunk-range child stopped too (none still running, at least one cancelled).
            children = [wf async for wf in client.list_workflows('WorkflowType = "ChunkRangeWorkflow"')]
            assert children, "the batch started no child"
            assert not [c.id for c in children if c.status == WorkflowExecutionStatus.RUNNING]
            assert WorkflowExecutionStatus.CANCELED in {c.status for c in children}
            # The cancelled histories replay: the cancellation path is deterministic too.
            replayer = Replayer(workflows=[BatchWorkflow, ChunkRangeWorkflow])
            cancelled_child = next(c for c in children if c.status == WorkflowExecutionStatus.CANCELED)
            for history in (
                await handle.fetch_history(),
                await client.get_workflow_handle(
                    cancelled_child.id, run_id=cancelled_child.run_id
                ).fetch_history(),
            ):
                replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
                assert replayed.replay_failure is None, replayed.replay_failure

            # The row was closed after every activity stopped: its counts are the documents' own.
            batch = batch_of(sqlite_sessions, batch_id)
            kept = stored(sqlite_sessions, batch_id)
            assert batch.status == BatchStatus.CANCELLED
            assert batch.finished_at is not None
            assert 8 <= batch.stored == kept < DOCUMENTS
            assert batch.compensation is not None
            assert f"{kept} stored document(s) kept" in batch.compensation
            assert "not processed" in batch.compensation
            assert f"by {OPERATOR.name}: registered the wrong share" in batch.compensation
            assert (batch.decision, batch.decided_by, batch.decision_reason) == (
                "cancelled",
                OPERATOR.name,
                "registered the wrong share",
            )
            with sqlite_sessions() as session:
                audit = session.execute(
                    select(AuditEvent.actor, AuditEvent.action, AuditEvent.reason).where(
                        AuditEvent.target == f"batch:{batch_id}"
                    )
                ).all()
            assert audit == [(OPERATOR.name, "cancel", "registered the wrong share")]

            # Asking again is refused with why; nothing more is written.
            with pytest.raises(NotAccepted, match="not running"):
                await asyncio.to_thread(cancel_ops.cancel, OPERATOR, ctx, batch_id, reason="again")
            assert stored(sqlite_sessions, batch_id) == kept


async def test_a_batch_cancelled_in_temporal_or_terminated_there_never_stays_running(
    namespace: TemporalNamespace, sqlite_url: str, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    folders = []
    for name in ("cancelled-in-ui", "terminated-in-cli"):
        folder = tmp_path / name
        write_corpus(folder, DOCUMENTS)
        folders.append(add_folder(sqlite_sessions, folder, name))
    client = await namespace.connect()
    with ClarificationStandIn(delay=0.05) as clarifier:
        async with running_worker(client, slow_settings(sqlite_url, namespace, clarifier)):
            ui_batch, ui_handle = await start_refresh(client, sqlite_sessions, source_id=folders[0])
            cli_batch, cli_handle = await start_refresh(client, sqlite_sessions, source_id=folders[1])
            await until(
                lambda: stored(sqlite_sessions, ui_batch) and stored(sqlite_sessions, cli_batch),
                "both batches store documents",
            )

            # Cancelled from Temporal's UI: the workflow closes its own row.
            await ui_handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await ui_handle.result()
            ui = batch_of(sqlite_sessions, ui_batch)
            assert ui.status == BatchStatus.CANCELLED
            assert ui.compensation is not None and ui.compensation.startswith(
                "cancelled in Temporal (UI or CLI)"
            )
            assert ui.stored == stored(sqlite_sessions, ui_batch) > 0

            # Terminated from Temporal's CLI: nothing runs in the workflow, so the reconciler (run by the SLA
            # monitor) closes the row.
            await cli_handle.terminate("temporal workflow terminate by hand")
            assert batch_of(sqlite_sessions, cli_batch).status == "running"
            # A scheduled run terminated before its batch started: the row names the run, not a batch workflow.
            run = await client.start_workflow(
                ScheduledRefreshWorkflow.run,
                ScheduledRefreshInput(source_id=folders[1]),
                id=f"source-{folders[1]}-refresh-{uuid.uuid4().hex[:8]}",
                task_queue="nobody-polls-this-queue",
            )
            await run.terminate("schedule deleted by hand")
            with sqlite_sessions.begin() as session:
                pending = repository.create_batch(session, source_id=folders[1], trigger="schedule")
                pending.workflow_id = f"{run.id}/{run.result_run_id}"
                pending_id = pending.id
            await client.execute_workflow(
                SlaMonitorWorkflow.run,
                SlaMonitorInput(),
                id=f"sla-monitor-{uuid.uuid4().hex[:8]}",
                task_queue=SCHEDULER_QUEUE,
            )
            terminated = batch_of(sqlite_sessions, cli_batch)
            assert terminated.status == BatchStatus.CANCELLED
            assert terminated.error_message is not None
            assert "terminated in Temporal (UI or CLI)" in terminated.error_message
            assert terminated.finished_at is not None
            never = batch_of(sqlite_sessions, pending_id)
            assert never.status == BatchStatus.CANCELLED and never.error_message is not None
            assert never.error_message.startswith(
                "its scheduled run was terminated in Temporal (UI or CLI) before the batch started"
            )


async def test_a_failed_batch_awaiting_a_decision_can_be_cancelled(
    namespace: TemporalNamespace, sqlite_url: str, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    source_id = add_folder(sqlite_sessions, gone, "gone")
    gone.rmdir()  # ingest fails: the batch waits for a decision
    client = await namespace.connect()
    async with running_worker(client, pipeline_settings(sqlite_url, namespace, evaluator="keywords")):
        batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
        await until(
            lambda: batch_of(sqlite_sessions, batch_id).status == BatchStatus.AWAITING_APPROVAL,
            "awaiting approval",
        )

        def alerted() -> bool:  # the workflow raises the alert once it waits: cancel after that, not before
            with sqlite_sessions() as session:
                return bool(session.scalars(select(Alert.id).where(Alert.batch_id == batch_id)).first())

        await until(alerted, "the failure alert raised")
        ctx = context(client, sqlite_sessions)
        await asyncio.to_thread(cancel_ops.cancel, OPERATOR, ctx, batch_id, reason="source retired")
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    batch = batch_of(sqlite_sessions, batch_id)
    assert batch.status == BatchStatus.CANCELLED
    with sqlite_sessions() as session:  # its failure alert needs no decision any more
        (alert,) = session.scalars(select(Alert).where(Alert.batch_id == batch_id)).all()
    assert alert.kind == "batch_failed:attempt-1" and alert.resolved_at is not None
    assert batch.compensation == (
        f"cancelled (by {OPERATOR.name}: source retired): 0 stored document(s) kept; nothing was left to process"
    )


async def test_a_scheduled_refresh_whose_batch_is_cancelled_ends_cancelled_not_failed(
    namespace: TemporalNamespace, sqlite_url: str, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    folder = tmp_path / "scheduled"
    write_corpus(folder, DOCUMENTS)
    source_id = add_folder(sqlite_sessions, folder, "scheduled")
    client = await namespace.connect()
    with ClarificationStandIn(delay=0.05) as clarifier:
        async with running_worker(client, slow_settings(sqlite_url, namespace, clarifier)):
            parent = await client.start_workflow(
                ScheduledRefreshWorkflow.run,
                ScheduledRefreshInput(source_id=source_id),
                id=f"source-{source_id}-refresh-{uuid.uuid4().hex[:8]}",
                task_queue=SCHEDULER_QUEUE,
            )

            def started() -> int | None:
                with sqlite_sessions() as session:
                    return session.scalar(
                        select(Batch.id).where(Batch.source_id == source_id, Batch.started_at.is_not(None))
                    )

            await until(
                lambda: started() is not None and stored(sqlite_sessions, started() or 0) > 0, "stored"
            )
            batch_id = started()
            assert batch_id is not None
            ctx = context(client, sqlite_sessions)
            await asyncio.to_thread(cancel_ops.cancel, OPERATOR, ctx, batch_id, reason="wrong schedule")
            result = await parent.result()
    assert (result.batch_id, result.status) == (batch_id, "cancelled")
    assert batch_of(sqlite_sessions, batch_id).status == BatchStatus.CANCELLED
