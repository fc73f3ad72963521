"""Compensation of failed batches through the real activities, worker, dev server and app database.

A batch that fails for too many failed documents quarantines what it stored, and an approved retry that
succeeds makes those documents good again; a batch whose ingest fails removes what a partial ingest left.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowFailureError

from core.vocabulary import ArtifactStatus
from data import repository
from data.models import Artifact, Batch, Evaluation
from orchestration.constants import SCHEDULER_QUEUE, STATE_AWAITING_APPROVAL, batch_workflow_id
from orchestration.types import BatchInput, BatchResult
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings, running_worker, wait_for_state
from tests.support.corpus import write_corpus
from tests.support.http_standins import ChatCompletionsStandIn
from tests.support.operations import decide, start_refresh

# Every test runs on Temporal alone and on the Temporal + Celery hybrid (tests/conftest.py).
pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("processing_backend")]


def statuses(sessions: sessionmaker[Session], batch_id: int) -> list[tuple[int, str, str | None]]:
    """(seq, status, failed stage) of every document of the batch, in sequence order."""
    with sessions() as session:
        rows = session.execute(
            select(Artifact.seq, Artifact.status, Artifact.failed_stage)
            .where(Artifact.batch_id == batch_id)
            .order_by(Artifact.seq)
        )
        return [(seq, status, stage) for seq, status, stage in rows]


async def test_documents_stored_by_a_failed_batch_are_quarantined_until_an_approved_retry_succeeds(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_corpus(folder, 5)
    with sqlite_sessions.begin() as session:
        source_id = repository.create_source(session, name="docs", kind="folder", location=str(folder)).id
    # The model refuses its first three requests (HTTP 400: those documents fail at evaluate, alone), then
    # answers: 3 of 5 failed is more than the 50% allowed, so the batch fails with 2 documents stored.
    with ChatCompletionsStandIn(fail_first=3, fail_status=400) as llm:
        settings = pipeline_settings(
            sqlite_url, namespace, evaluator="openai", openai_base_url=llm.base_url, openai_model="m-1"
        )
        client = await namespace.connect()
        async with running_worker(client, settings):
            batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
            await wait_for_state(handle, STATE_AWAITING_APPROVAL)

            assert statuses(sqlite_sessions, batch_id) == [
                (0, "failed", "evaluate"),
                (1, "failed", "evaluate"),
                (2, "failed", "evaluate"),
                (3, "quarantined", None),
                (4, "quarantined", None),
            ]
            with sqlite_sessions() as session:
                batch = session.get_one(Batch, batch_id)
                assert (batch.status, batch.error_type, batch.compensation) == (
                    "awaiting_approval",
                    "TooManyFailures",
                    "quarantined 2 stored document(s) until a retry succeeds",
                )

            await decide(client, sqlite_sessions, batch_id=batch_id, approve=True, actor="ana")
            result = await handle.result()

    assert (result.status, result.total, result.stored, result.failed) == ("completed", 5, 5, 0)
    assert statuses(sqlite_sessions, batch_id) == [(seq, "stored", None) for seq in range(5)]
    with sqlite_sessions() as session:
        batch = session.get_one(Batch, batch_id)
        assert (batch.status, batch.attempt, batch.stored, batch.failed) == ("completed", 2, 5, 0)
        evaluated = session.scalars(
            select(Artifact.seq).join(Evaluation).where(Artifact.batch_id == batch_id).order_by(Artifact.seq)
        ).all()
    assert evaluated == [0, 1, 2, 3, 4]
    assert llm.calls == 3 + 2 + 3  # three refused, two stored, the three failed ones again on the retry


async def test_a_failed_ingest_removes_what_the_partial_ingest_left(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    gone = tmp_path / "gone"
    with sqlite_sessions.begin() as session:
        source_id = repository.create_source(session, name="gone", kind="folder", location=str(gone)).id
        earlier = repository.create_batch(session, source_id=source_id).id
        batch = repository.create_batch(session, source_id=source_id)
        batch_id, workflow_id = batch.id, batch_workflow_id(batch.id, uuid.uuid4().hex)
        batch.workflow_id = workflow_id
        # Rows an earlier attempt of this batch's ingest committed before it crashed (its folder has gone
        # since), beside an earlier batch's documents, which are not this batch's to remove.
        repository.insert_artifacts(
            session,
            rows=[
                {"batch_id": b, "source_id": source_id, "seq": seq, "uri": f"file:///gone/{seq}.txt",
                 "content_type": "text/plain", "status": ArtifactStatus.INGESTED, "raw": b"partial"}
                for b, count in ((batch_id, 3), (earlier, 2)) for seq in range(count)
            ],
        )  # fmt: skip
    client = await namespace.connect()
    async with running_worker(client, pipeline_settings(sqlite_url, namespace)):
        handle = await client.start_workflow(
            "BatchWorkflow",
            BatchInput(batch_id=batch_id, source_id=source_id),
            id=workflow_id,
            task_queue=SCHEDULER_QUEUE,
            result_type=BatchResult,
        )
        await wait_for_state(handle, STATE_AWAITING_APPROVAL)
        assert statuses(sqlite_sessions, batch_id) == []
        assert statuses(sqlite_sessions, earlier) == [(0, "ingested", None), (1, "ingested", None)]
        with sqlite_sessions() as session:
            failed = session.get_one(Batch, batch_id)
            assert (failed.status, failed.failed_stage, failed.error_type, failed.compensation) == (
                "awaiting_approval",
                "ingest",
                "InvalidSource",
                "removed 3 partially ingested document(s)",
            )
        await decide(client, sqlite_sessions, batch_id=batch_id, approve=False, actor="ana", reason="gone")
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    with sqlite_sessions() as session:
        assert session.get_one(Batch, batch_id).status == "failed"
