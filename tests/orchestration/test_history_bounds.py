"""A 100,000-document batch keeps every history small and every workflow's pending activities bounded.

The workflow logic runs on the real dev server; the activities are stand-ins registered under the real names
(no documents are processed), so the test measures orchestration only.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from orchestration.chunks import ChunkRangeWorkflow
from orchestration.types import (
    BatchInput,
    BatchPlan,
    BatchResult,
    BatchTally,
    ChunkFailureInput,
    ChunkInput,
    ChunkResult,
    FinishBatchInput,
    IngestInput,
    IngestResult,
    StartBatchInput,
)
from orchestration.workflows import BatchWorkflow
from tests.conftest import TemporalNamespace

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

DOCS = 100_000


class StandIns:
    def __init__(self, plan: BatchPlan) -> None:
        self.plan = plan
        self.chunks: Counter[tuple[int, int]] = Counter()

    @activity.defn(name="start_batch")
    async def start_batch(self, input: StartBatchInput) -> BatchPlan:
        return self.plan

    @activity.defn(name="ingest_source")
    async def ingest_source(self, input: IngestInput) -> IngestResult:
        return IngestResult(total=DOCS, failed=0)

    @activity.defn(name="process_chunk")
    async def process_chunk(self, input: ChunkInput) -> ChunkResult:
        return ChunkResult(done=input.end_seq - input.start_seq, failed=0)

    @activity.defn(name="evaluate_chunk")
    async def evaluate_chunk(self, input: ChunkInput) -> ChunkResult:
        self.chunks[(input.start_seq, input.end_seq)] += 1
        return ChunkResult(done=input.end_seq - input.start_seq, failed=0)

    @activity.defn(name="tally_batch")
    async def tally_batch(self, batch_id: int) -> BatchTally:
        done = sum(end - start for start, end in self.chunks)
        return BatchTally(total=DOCS, stored=done, failed=DOCS - done)

    @activity.defn(name="fail_chunk")
    async def fail_chunk(self, input: ChunkFailureInput) -> int:
        raise AssertionError("no chunk should fail")

    @activity.defn(name="finish_batch")
    async def finish_batch(self, input: FinishBatchInput) -> BatchResult:
        done = sum(end - start for start, end in self.chunks)
        return BatchResult(batch_id=input.batch_id, status=input.status, total=DOCS, stored=done, failed=0)


async def history_figures(client: Client, workflow_id: str) -> list[tuple[str, int, int]]:
    """(run, events, max pending activities) for every run of every workflow whose ID starts with the batch's."""
    out = []
    async for wf in client.list_workflows(f'WorkflowId STARTS_WITH "{workflow_id}"'):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        pending = peak = 0
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                pending += 1
                peak = max(peak, pending)
            elif event.event_type in (
                EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
                EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
                EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
            ):
                pending -= 1
        out.append((f"{wf.id}/{wf.run_id}", len(history.events), peak))
    return out


@pytest.mark.parametrize(
    ("chunk_size", "chunks_per_child", "expect_continue_as_new"),
    [(200, 100, False), (100, 1000, True)],
    ids=["children-of-100-chunks", "one-child-continues-as-new"],
)
async def test_100k_document_batch_stays_within_history_limits(
    namespace: TemporalNamespace, chunk_size: int, chunks_per_child: int, expect_continue_as_new: bool
) -> None:
    client = await namespace.connect()
    plan = BatchPlan(
        chunk_size=chunk_size,
        chunks_per_child=chunks_per_child,
        chunk_window=200,
        max_children=8,
        heartbeat_seconds=30,
    )
    stand_ins = StandIns(plan)
    queues = {"loreguard-scheduler", "loreguard-ingestion", "loreguard-processing", "loreguard-evaluation"}
    batch_id = 900_000 + uuid.uuid4().int % 99_999
    workers = [
        Worker(
            client,
            task_queue=q,
            workflows=[BatchWorkflow, ChunkRangeWorkflow] if q == "loreguard-scheduler" else [],
            activities=[]
            if q == "loreguard-scheduler"
            else [
                stand_ins.start_batch,
                stand_ins.ingest_source,
                stand_ins.process_chunk,
                stand_ins.evaluate_chunk,
                stand_ins.fail_chunk,
                stand_ins.tally_batch,
                stand_ins.finish_batch,
            ],
            max_concurrent_activities=200,
        )
        for q in sorted(queues)
    ]
    for w in workers:
        await w.__aenter__()
    try:
        result = await client.execute_workflow(
            BatchWorkflow.run,
            BatchInput(batch_id=batch_id, source_id=1),
            id=f"batch-{batch_id}",
            task_queue="loreguard-scheduler",
        )
    finally:
        for w in workers:
            await w.__aexit__(None, None, None)

    # Every chunk ran exactly once and covers the batch without gaps.
    assert result.stored == DOCS
    chunks = DOCS // chunk_size
    assert len(stand_ins.chunks) == chunks and set(stand_ins.chunks.values()) == {1}
    figures = await history_figures(client, f"batch-{batch_id}")
    for run, events, peak in figures:
        assert events < 10_000, f"{run} has {events} events"
        assert peak <= 500, f"{run} had {peak} pending activities"
    children = [f for f in figures if "-chunks-" in f[0]]
    continued = len(children) > -(-chunks // chunks_per_child)
    assert continued == expect_continue_as_new, figures
