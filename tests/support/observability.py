"""A worker with LoreGuard's metrics and health endpoint in the test's process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client

from core.settings import Settings
from orchestration.constants import ALL_QUEUES
from tests.support.batches import terminate_running
from workers.main import build_workers, observability
from workers.metrics import ObservabilityServer, WorkerMetrics


@asynccontextmanager
async def observed_worker(client: Client, settings: Settings) -> AsyncIterator[ObservabilityServer]:
    """All task queues in this process with LoreGuard's metrics and the health endpoint on a free port."""
    metrics = WorkerMetrics()
    workers, acts, threads = build_workers(client, settings, ALL_QUEUES, cpu_pool=None, metrics=metrics)
    for w in workers:
        await w.__aenter__()
    try:
        async with observability(settings, client, workers, acts.steps.sessions, metrics) as server:
            assert server is not None
            yield server
    finally:
        await terminate_running(client)
        await asyncio.gather(*(w.__aexit__(None, None, None) for w in workers))
        threads.shutdown(wait=False, cancel_futures=True)
        acts.steps.http.close()
