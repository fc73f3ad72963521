"""The workers' backlog monitor: a real worker on a real Temporal records every queue's backlog on its interval,
with nobody looking at the Workers page; only the process serving the scheduler queue does."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from data.models import QueueSample
from orchestration.constants import ALL_QUEUES, INGESTION_QUEUE, SCHEDULER_QUEUE
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings
from workers.main import run_worker

pytestmark = pytest.mark.temporal

INTERVAL = 0.5


@asynccontextmanager
async def worker(sqlite_url: str, namespace: TemporalNamespace, queues: Sequence[str]) -> AsyncIterator[None]:
    settings = pipeline_settings(
        sqlite_url, namespace, health_port=-1, metrics_port=0, backlog_sample_seconds=INTERVAL
    )
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_worker(settings, queues, ready=ready, stop=stop))
    try:
        await asyncio.wait_for(ready.wait(), timeout=30)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def sample_rows(sessions: sessionmaker[Session]) -> list[QueueSample]:
    with sessions() as session:
        return list(session.scalars(select(QueueSample).order_by(QueueSample.sampled_at)))


async def test_the_scheduler_worker_records_the_backlog_on_its_interval_with_no_page_open(
    sqlite_url: str, sqlite_sessions: sessionmaker[Session], namespace: TemporalNamespace
) -> None:
    client = await namespace.connect()
    for i in range(3):  # workflow tasks on a queue this worker does not poll: a backlog of 3
        await client.start_workflow("BatchWorkflow", id=f"backlog-{i}", task_queue=INGESTION_QUEUE)

    async with worker(sqlite_url, namespace, [SCHEDULER_QUEUE]):
        for _ in range(300):  # Temporal's statistics can lag 5-10 s
            rows = sample_rows(sqlite_sessions)
            seen = any((r.queue, r.task_type, r.backlog) == (INGESTION_QUEUE, "workflow", 3) for r in rows)
            if seen and len({r.sampled_at for r in rows}) >= 3:
                break
            await asyncio.sleep(0.1)

    late = next(r for r in rows if (r.queue, r.task_type, r.backlog) == (INGESTION_QUEUE, "workflow", 3))
    assert late.backlog_age_s > 0
    times = sorted({r.sampled_at for r in rows})
    assert len(times) >= 3, "not one sample per interval"
    # Every queue and task type at every tick, a tick about an interval after the one before.
    with sqlite_sessions() as session:
        per_tick = session.execute(
            select(QueueSample.sampled_at, func.count()).group_by(QueueSample.sampled_at)
        ).all()
    assert {count for _, count in per_tick} == {2 * len(ALL_QUEUES)}
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert min(gaps) >= INTERVAL / 2


async def test_a_worker_not_serving_the_scheduler_queue_records_no_backlog(
    sqlite_url: str, sqlite_sessions: sessionmaker[Session], namespace: TemporalNamespace
) -> None:
    async with worker(sqlite_url, namespace, [INGESTION_QUEUE]):
        await asyncio.sleep(4 * INTERVAL)
    assert sample_rows(sqlite_sessions) == []
