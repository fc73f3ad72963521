"""Worker entrypoint: one process serving the chosen task queues (all of them by default)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from data.db import make_engine, make_session_factory
from orchestration.client import connect
from orchestration.constants import (
    ALL_QUEUES,
    EVALUATION_QUEUE,
    INGESTION_QUEUE,
    PROCESSING_QUEUE,
    SCHEDULER_QUEUE,
)
from orchestration.settings import Settings
from orchestration.workflows import BatchWorkflow, ChunkRangeWorkflow
from workers.activities import PipelineActivities
from workers.stages.clarify import ClarificationClient
from workers.stages.evaluate import make_evaluator
from workers.steps import BatchSteps

log = logging.getLogger(__name__)


def make_cpu_pool(processes: int) -> Executor:
    """Processes for the CPU-bound stages: one Python process runs them on one core only (the GIL).

    forkserver, not fork: the worker has Temporal's runtime threads, which a fork would copy half-alive.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["workers.stages.pipeline"])
    return ProcessPoolExecutor(max_workers=processes, mp_context=ctx)


def build_workers(
    client: Client, settings: Settings, queues: Sequence[str], *, cpu_pool: Executor | None
) -> tuple[list[Worker], PipelineActivities, ThreadPoolExecutor]:
    engine = make_engine(settings.target_database_url)
    sessions = make_session_factory(engine)
    http = httpx.Client(timeout=settings.fetch_timeout_seconds, follow_redirects=True)
    clarifier = ClarificationClient(settings.clarification_url, http) if settings.clarification_url else None
    steps = BatchSteps(
        settings=settings,
        sessions=sessions,
        cpu_pool=cpu_pool,
        http=http,
        evaluator=make_evaluator(settings, http),
        clarifier=clarifier,
    )
    acts = PipelineActivities(steps)
    threads = ThreadPoolExecutor(
        max_workers=settings.ingestion_concurrency
        + settings.processing_concurrency
        + settings.evaluation_concurrency
        + 4,
        thread_name_prefix="activity",
    )
    workers: list[Worker] = []
    if SCHEDULER_QUEUE in queues:
        workers.append(
            Worker(client, task_queue=SCHEDULER_QUEUE, workflows=[BatchWorkflow, ChunkRangeWorkflow])
        )
    if INGESTION_QUEUE in queues:
        workers.append(
            Worker(
                client,
                task_queue=INGESTION_QUEUE,
                activities=[acts.start_batch, acts.ingest_source, acts.finish_batch, acts.fail_chunk],
                activity_executor=threads,
                max_concurrent_activities=settings.ingestion_concurrency,
            )
        )
    if PROCESSING_QUEUE in queues:
        workers.append(
            Worker(
                client,
                task_queue=PROCESSING_QUEUE,
                activities=[acts.process_chunk],
                activity_executor=threads,
                max_concurrent_activities=settings.processing_concurrency,
            )
        )
    if EVALUATION_QUEUE in queues:
        workers.append(
            Worker(
                client,
                task_queue=EVALUATION_QUEUE,
                activities=[acts.evaluate_chunk],
                activity_executor=threads,
                max_concurrent_activities=settings.evaluation_concurrency,
                max_task_queue_activities_per_second=settings.evaluation_rate_limit,
            )
        )
    return workers, acts, threads


async def run_worker(
    settings: Settings, queues: Sequence[str] = ALL_QUEUES, *, ready: asyncio.Event | None = None
) -> None:
    """Run workers for `queues` until cancelled."""
    unknown = set(queues) - set(ALL_QUEUES)
    if unknown:
        raise ValueError(f"unknown task queue(s): {', '.join(sorted(unknown))}")
    client = await connect(settings)
    cpu_pool = make_cpu_pool(settings.cpu_processes) if PROCESSING_QUEUE in queues else None
    workers, acts, threads = build_workers(client, settings, queues, cpu_pool=cpu_pool)
    log.info("worker polling %s", ", ".join(queues))
    try:
        async with _AllWorkers(workers):
            if ready is not None:
                ready.set()
            await asyncio.Event().wait()
    finally:
        threads.shutdown(wait=False, cancel_futures=True)
        if cpu_pool is not None:
            cpu_pool.shutdown(wait=False, cancel_futures=True)
        acts.steps.http.close()


class _AllWorkers:
    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def __aenter__(self) -> None:
        for w in self.workers:
            await w.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(w.__aexit__(None, None, None) for w in self.workers))
