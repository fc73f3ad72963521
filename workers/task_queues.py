"""What Temporal says of each task queue (pollers, backlog and its age, rates), and the worker's backlog monitor:
it keeps a sample of every queue's backlog in the app database every backlog_sample_seconds, whether or not
anyone has the Workers page open, so that page has a history to draw."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from core.settings import Settings
from data import repository
from orchestration.constants import ALL_QUEUES
from orchestration.gateway import RPC_TIMEOUT, TRANSPORT_CODES

log = logging.getLogger(__name__)

_TYPES = (
    ("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
    ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
)


@dataclass(frozen=True)
class Poller:
    queue: str
    kind: str
    identity: str
    last_access: datetime | None
    rate_per_second: float


@dataclass(frozen=True)
class QueueState:
    queue: str
    kind: str
    pollers: int
    backlog: int
    backlog_age_s: float
    add_rate: float
    dispatch_rate: float
    workers: tuple[Poller, ...]
    error: str | None = None


async def describe_task_queues(
    client: Client,
    namespace: str,
    queues: Sequence[str] = ALL_QUEUES,
    *,
    timeout: timedelta = RPC_TIMEOUT,
) -> list[QueueState]:
    """DescribeTaskQueue with report_stats for each queue and task type. A queue Temporal refuses to describe
    carries the refusal as its error; an unreachable Temporal raises the RPCError."""

    async def one(queue: str, kind: str, queue_type: Any) -> QueueState:
        request = DescribeTaskQueueRequest(
            namespace=namespace,
            task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=queue_type,
            report_stats=True,
        )
        try:
            resp = await client.workflow_service.describe_task_queue(request, timeout=timeout)
        except RPCError as exc:
            if exc.status in TRANSPORT_CODES:
                raise
            return QueueState(queue, kind, 0, 0, 0.0, 0.0, 0.0, (), exc.message)
        stats = resp.stats
        pollers = tuple(
            Poller(
                queue=queue,
                kind=kind,
                identity=p.identity,
                last_access=p.last_access_time.ToDatetime(tzinfo=UTC)
                if p.HasField("last_access_time")
                else None,
                rate_per_second=round(p.rate_per_second, 2),
            )
            for p in resp.pollers
        )
        return QueueState(
            queue=queue,
            kind=kind,
            pollers=len(pollers),
            backlog=int(stats.approximate_backlog_count),
            backlog_age_s=round(stats.approximate_backlog_age.ToTimedelta().total_seconds(), 1),
            add_rate=round(stats.tasks_add_rate, 2),
            dispatch_rate=round(stats.tasks_dispatch_rate, 2),
            workers=pollers,
        )

    return list(await asyncio.gather(*(one(q, kind, qt) for q in queues for kind, qt in _TYPES)))


def samples(states: Sequence[QueueState]) -> list[tuple[str, str, int, float]]:
    """(queue, type, backlog, oldest s) of the queues Temporal described, for the backlog history."""
    return [(s.queue, s.kind, s.backlog, s.backlog_age_s) for s in states if not s.error]


def record_backlog(
    sessions: sessionmaker[Session], settings: Settings, states: Sequence[QueueState], at: datetime
) -> bool:
    """Store this look at the queues (and delete samples past backlog_retention_hours); False when another
    worker stored one less than half an interval ago: several processes may serve the scheduler queue, and
    half an interval keeps about one sample per interval between them while a late tick never skips its own."""
    with sessions.begin() as session:
        return repository.record_queue_samples(
            session,
            at=at,
            samples=samples(states),
            every=timedelta(seconds=settings.backlog_sample_seconds / 2),
            keep=timedelta(hours=settings.backlog_retention_hours),
        )


async def sample_backlog_once(client: Client, settings: Settings, sessions: sessionmaker[Session]) -> bool:
    """One tick of the monitor: describe every queue, store the samples. A Temporal or a database that does not
    answer costs this tick only (logged); the next one tries again."""
    try:
        states = await describe_task_queues(client, settings.temporal_namespace)
        return await asyncio.to_thread(record_backlog, sessions, settings, states, datetime.now(UTC))
    except RPCError as exc:
        log.warning("backlog not sampled: Temporal did not answer (%s)", exc.message)
    except SQLAlchemyError as exc:
        log.warning("backlog not sampled: the app database refused it (%s)", exc)
    return False


@asynccontextmanager
async def backlog_monitor(
    client: Client, settings: Settings, sessions: sessionmaker[Session]
) -> AsyncIterator[None]:
    """Sample the backlog every backlog_sample_seconds while the block runs (the first sample at once)."""

    async def run() -> None:
        while True:
            await sample_backlog_once(client, settings, sessions)
            await asyncio.sleep(settings.backlog_sample_seconds)

    task = asyncio.create_task(run(), name="backlog-monitor")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
