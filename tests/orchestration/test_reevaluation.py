"""Re-evaluating the library on a real Temporal dev server: the preview's count and cost, a run that judges every
document once and keeps people's decisions, a cancel that keeps what was stored, and a kill -9 of the worker
that the run survives."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowFailureError

from core.roles import Role
from core.settings import Settings
from data import repository
from data.models import Evaluation, Reevaluation
from data.repository import ReevaluationScope
from operations import reevaluations, reviews
from operations.context import Actor, Context
from operations.errors import Refused
from orchestration.constants import SCHEDULER_QUEUE, reevaluation_workflow_id
from orchestration.types import ReevaluationInput, ReevaluationResult
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings, running_worker
from tests.support.crash import WorkerProcess
from tests.support.http_standins import ChatCompletionsStandIn, RecordedRequest, Reply
from tests.support.library import Verdict, store_documents
from tests.support.operations import gateway
from workers import processing
from workers.reevaluation_steps import REEVALUATE_GROUP

pytestmark = [pytest.mark.temporal]

ANALYST = Actor("ana@example.org", frozenset({Role.ANALYST}))
PRICE = 2.0  # per million tokens


class SlowModel(ChatCompletionsStandIn):
    """The stand-in LLM, `delay` seconds a call: a re-evaluation stays in flight long enough to act on it."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def respond(self, request: RecordedRequest) -> Reply:
        time.sleep(self.delay)
        return super().respond(request)


def model_settings(db_url: str, namespace: TemporalNamespace, model: ChatCompletionsStandIn) -> Settings:
    return pipeline_settings(
        db_url,
        namespace,
        evaluator="openai",
        openai_base_url=model.base_url,
        openai_api_key="test-key",
        openai_model="stand-in-model",
        openai_price_per_million_tokens=PRICE,
    )


def ops(settings: Settings, sessions: sessionmaker[Session]) -> Context:
    address = settings.temporal_address or ""
    return Context(settings, sessions, gateway(address, settings.temporal_namespace), processing)


def row(sessions: sessionmaker[Session], reevaluation_id: int) -> Reevaluation:
    with sessions() as session:
        found = session.get(Reevaluation, reevaluation_id)
        assert found is not None
        return found


def judged_by(sessions: sessionmaker[Session], reevaluation_id: int) -> int:
    with sessions() as session:
        stmt = select(func.count()).where(Evaluation.reevaluation_id == reevaluation_id)
        return int(session.execute(stmt).scalar_one())


async def wait_until(check: Any, *, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def test_a_re_evaluation_judges_each_document_once_keeps_decisions_and_counts_its_tokens(
    namespace: TemporalNamespace, sqlite_url: str, sqlite_sessions: sessionmaker[Session]
) -> None:
    docs = store_documents(sqlite_sessions, "feeds", [Verdict(f"Item {i}", "irrelevant") for i in range(230)])
    with ChatCompletionsStandIn() as model:
        settings = model_settings(sqlite_url, namespace, model)
        ctx = ops(settings, sqlite_sessions)
        reviews.review(ANALYST, ctx, artifact_id=docs[0], label="relevant", reason="a person knows better")
        scope = ReevaluationScope()
        before = reevaluations.preview(ANALYST, ctx, scope)
        assert (before.documents, before.reviewed, before.evaluator, before.model) == (
            230,
            1,
            "openai",
            "stand-in-model",
        )
        assert before.estimated_tokens and before.estimated_cost == pytest.approx(
            before.estimated_tokens / 1e6 * PRICE
        )
        client = await namespace.connect()
        async with running_worker(client, settings):
            reevaluation_id = await asyncio.to_thread(reevaluations.start, ANALYST, ctx, scope, expected=230)
            result = await client.get_workflow_handle(
                reevaluation_workflow_id(reevaluation_id), result_type=ReevaluationResult
            ).result()
        assert (result.status, result.done) == ("completed", 230)
        assert model.calls == 230  # every document judged once
        done = row(sqlite_sessions, reevaluation_id)
        assert (done.status, done.done, done.total) == ("completed", 230, 230)
        reported = sum(r.json()["messages"][-1]["content"].__len__() // 4 + 40 for r in model.requests)
        assert done.tokens == reported  # the tokens the API reported, summed
        assert judged_by(sqlite_sessions, reevaluation_id) == 230
        with sqlite_sessions() as session:
            kept = session.execute(select(Evaluation).where(Evaluation.artifact_id == docs[0])).scalar_one()
            other = session.execute(select(Evaluation).where(Evaluation.artifact_id == docs[1])).scalar_one()
        # The person's label stays; the evaluator's new verdict is kept beside it.
        assert (kept.label, kept.reviewed_by, kept.model, kept.tokens is not None) == (
            "relevant",
            "ana@example.org",
            "stand-in-model",
            True,
        )
        assert other.model == "stand-in-model" and other.reevaluation_id == reevaluation_id
        after = reevaluations.preview(ANALYST, ctx, scope)
        assert after.estimated_tokens == round(done.tokens / 230 * 230)  # now from what the API reported


async def test_cancelling_a_re_evaluation_stops_it_and_keeps_what_was_stored(
    namespace: TemporalNamespace, sqlite_url: str, sqlite_sessions: sessionmaker[Session]
) -> None:
    store_documents(sqlite_sessions, "feeds", [Verdict(f"Item {i}", "irrelevant") for i in range(600)])
    with SlowModel(delay=0.02) as model:
        settings = model_settings(sqlite_url, namespace, model)
        ctx = ops(settings, sqlite_sessions)
        client = await namespace.connect()
        async with running_worker(client, settings):
            reevaluation_id = await asyncio.to_thread(
                reevaluations.start, ANALYST, ctx, ReevaluationScope(), expected=600
            )
            await wait_until(lambda: row(sqlite_sessions, reevaluation_id).done >= REEVALUATE_GROUP)
            await asyncio.to_thread(
                reevaluations.cancel, ANALYST, ctx, reevaluation_id, reason="wrong topics"
            )
            with pytest.raises(WorkflowFailureError):
                await client.get_workflow_handle(
                    reevaluation_workflow_id(reevaluation_id), result_type=ReevaluationResult
                ).result()
        stopped = row(sqlite_sessions, reevaluation_id)
        assert stopped.status == "cancelled" and stopped.finished_at is not None
        assert 0 < stopped.done < 600
        assert (
            judged_by(sqlite_sessions, reevaluation_id) == stopped.done
        )  # what was stored stays, and says so
        with pytest.raises(Refused, match="cancelled already"):
            reevaluations.cancel(ANALYST, ctx, reevaluation_id)


async def test_a_re_evaluation_survives_kill_9_of_its_worker(
    namespace: TemporalNamespace, sqlite_url: str, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    total = 1200
    store_documents(sqlite_sessions, "feeds", [Verdict(f"Item {i}", "irrelevant") for i in range(total)])
    with SlowModel(delay=0.005) as model:
        settings = model_settings(sqlite_url, namespace, model).model_copy(update={"heartbeat_seconds": 5})
        ctx = ops(settings, sqlite_sessions)
        env = {
            **os.environ,
            **namespace.env(),
            "LOREGUARD_DATABASE_URL": sqlite_url,
            "LOREGUARD_STATE_DIR": str(tmp_path / "state"),
            "LOREGUARD_EVALUATOR": "openai",
            "LOREGUARD_OPENAI_BASE_URL": model.base_url,
            "LOREGUARD_OPENAI_API_KEY": "test-key",
            "LOREGUARD_OPENAI_MODEL": "stand-in-model",
            "LOREGUARD_HEARTBEAT_SECONDS": "5",
            "LOREGUARD_PROCESSING_PROCESSES": "1",
            "LOREGUARD_ALLOWED_HOSTS": json.dumps(["127.0.0.1"]),
        }
        worker = WorkerProcess(env, tmp_path / "worker.log", [sys.executable, "-m", "workers"])
        worker.start()
        try:
            client: Client = await namespace.connect()
            reevaluation_id = await asyncio.to_thread(
                reevaluations.start, ANALYST, ctx, ReevaluationScope(), expected=total
            )
            await wait_until(lambda: row(sqlite_sessions, reevaluation_id).done >= total // 4, timeout=180)
            worker.kill9()
            before = row(sqlite_sessions, reevaluation_id).done
            assert before < total, "it finished before the crash; nothing was tested"
            worker.start()
            result = await client.get_workflow_handle(
                reevaluation_workflow_id(reevaluation_id), result_type=ReevaluationResult
            ).result()
        finally:
            worker.stop()
        assert (result.status, row(sqlite_sessions, reevaluation_id).done) == ("completed", total)
        assert judged_by(sqlite_sessions, reevaluation_id) == total  # every document, its verdict stored once
        # Only the group in hand at the crash was judged again (its verdicts had not been stored).
        assert total <= model.calls <= total + REEVALUATE_GROUP
        with sqlite_sessions() as session:
            assert repository.running_reevaluations(session) == []


async def test_a_long_re_evaluation_continues_as_new_so_its_history_stays_short(
    namespace: TemporalNamespace,
    sqlite_url: str,
    sqlite_sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workers import reevaluation_steps

    monkeypatch.setattr(reevaluation_steps, "REEVALUATE_PAGE", 10)  # 12 pages of 10 stand for 12 pages of 200
    store_documents(sqlite_sessions, "feeds", [Verdict(f"Item {i}", "irrelevant") for i in range(115)])
    settings = pipeline_settings(sqlite_url, namespace, evaluator="keywords")
    with sqlite_sessions.begin() as session:
        reevaluation_id = repository.create_reevaluation(
            session,
            scope=ReevaluationScope(),
            description="the whole library",
            total=115,
            evaluator="keywords",
            model=None,
            topics_version=None,
            started_by="tester",
            reason=None,
        ).id
    client = await namespace.connect()
    async with running_worker(client, settings):
        handle = await client.start_workflow(
            "ReevaluationWorkflow",
            ReevaluationInput(reevaluation_id, pages_per_run=3),
            id=reevaluation_workflow_id(reevaluation_id),
            task_queue=SCHEDULER_QUEUE,
            result_type=ReevaluationResult,
        )
        result = await handle.result()
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
        last = await client.get_workflow_handle(handle.id).fetch_history()
    assert (result.status, result.done) == ("completed", 115)
    assert len(runs) == 4  # 12 pages, 3 a run: the history of each run is a handful of activities
    assert len(last.events) < 60
    assert judged_by(sqlite_sessions, reevaluation_id) == 115
