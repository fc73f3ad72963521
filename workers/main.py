"""Worker entrypoint: one process serving the chosen task queues (all of them by default)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

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
from workers.pool import make_cpu_pool
from workers.steps import build_steps

log = logging.getLogger(__name__)


def build_workers(
    client: Client, settings: Settings, queues: Sequence[str], *, cpu_pool: ProcessPoolExecutor | None
) -> tuple[list[Worker], PipelineActivities, ThreadPoolExecutor]:
    acts = PipelineActivities(build_steps(settings), cpu_pool)
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
                activities=acts.bookkeeping(),
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
    cpu_pool = make_cpu_pool(settings) if PROCESSING_QUEUE in queues else None
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
            cpu_pool.shutdown(wait=True, cancel_futures=True)  # at most the chunks in flight
        acts.steps.http.close()


class _AllWorkers:
    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def __aenter__(self) -> None:
        for w in self.workers:
            await w.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(w.__aexit__(None, None, None) for w in self.workers))
