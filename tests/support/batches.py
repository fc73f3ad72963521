"""Helpers for tests that run real batches: an in-process worker and waiting on batches."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from core.settings import Settings
from guard.folders import SAMPLES_FOLDER
from orchestration.constants import ALL_QUEUES
from orchestration.types import BatchProgress
from tests.conftest import TemporalNamespace
from workers.main import build_workers


def pipeline_settings(db_url: str, temporal: TemporalNamespace | str, **overrides: object) -> Settings:
    """Worker settings for tests; `temporal` is the test's namespace (or a bare address: namespace default)."""
    values: dict[str, object] = {
        "database_url": db_url,
        "temporal_address": temporal if isinstance(temporal, str) else temporal.address,
        "temporal_namespace": "default" if isinstance(temporal, str) else temporal.name,
        "processing_processes": 1,
        "heartbeat_seconds": 10,
        "chunk_size": 10,
        # The loopback stand-ins and the tests' temporary folders, which the policy forbids by default.
        "allowed_hosts": ["127.0.0.1"],
        "folder_roots": [Path(tempfile.gettempdir()).resolve(), SAMPLES_FOLDER],
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[None]:
    """All task queues served in this process (CPU stages inline: no process pool); with the celery backend,
    a real Celery worker on the broker too (threads in this process, consuming the test's own queue)."""
    workers, acts, threads = build_workers(client, settings, ALL_QUEUES, cpu_pool=None)
    with contextlib.ExitStack() as stack:
        if settings.processing_backend == "celery":
            stack.enter_context(celery_worker(settings))
        for w in workers:
            await w.__aenter__()
        try:
            yield
        finally:
            await terminate_running(client)
            await asyncio.gather(*(w.__aexit__(None, None, None) for w in workers))
            threads.shutdown(wait=False, cancel_futures=True)
            acts.steps.http.close()


@contextlib.contextmanager
def celery_worker(settings: Settings, concurrency: int = 2) -> Iterator[None]:
    """The stage tasks served by an embedded Celery worker; the test's queue is emptied afterwards."""
    from celery.contrib.testing.worker import start_worker

    from orchestration.celery_app import make_celery_app
    from workers.celery_tasks import register_tasks

    app = make_celery_app(settings)
    register_tasks(app, settings)
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=concurrency,
            perform_ping_check=False,
            shutdown_timeout=30,
            queues=[settings.celery_queue],
            loglevel="WARNING",
        ):
            yield
    finally:
        purge_celery_queue(settings)


def purge_celery_queue(settings: Settings) -> None:
    from orchestration.celery_app import delete_queue, make_celery_app

    with contextlib.suppress(Exception):
        delete_queue(make_celery_app(settings), settings.celery_queue)


async def terminate_running(client: Client) -> None:
    """Leave no running workflow behind in the client's namespace (the test's own)."""
    async for wf in client.list_workflows('ExecutionStatus="Running"'):
        if wf.status == WorkflowExecutionStatus.RUNNING:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(wf.id, run_id=wf.run_id).terminate("test finished")


async def wait_for_state(
    handle: WorkflowHandle[Any, Any], state: str, timeout: float = 60, *, attempt: int | None = None
) -> BatchProgress:
    """Poll the batch workflow's progress query until it reports `state` (in `attempt`, when given)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        progress: BatchProgress = await handle.query("progress", result_type=BatchProgress)
        if progress.state == state and attempt in (None, progress.attempt):
            return progress
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(
                f"{handle.id} stayed {progress.state} (attempt {progress.attempt}), never {state}"
                + ("" if attempt is None else f" in attempt {attempt}")
            )
        await asyncio.sleep(0.1)


async def interrupted_activities(client: Client) -> list[str]:
    """Activities of any workflow in the namespace that had to run again or ended by a timeout, with why.

    A retried attempt leaves no event of its own: the started event of the attempt that counted carries its
    number and the failure of the attempt before (a worker cancelled at shutdown, a heartbeat timeout after
    kill -9)."""
    found: list[str] = []
    async for wf in client.list_workflows():
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        scheduled = {
            e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        }
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = e.activity_task_started_event_attributes
                if started.attempt > 1:
                    name = scheduled.get(started.scheduled_event_id, "?")
                    found.append(
                        f"{wf.id}: {name} attempt {started.attempt} after {started.last_failure.message!r}"
                    )
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
                found.append(f"{wf.id} event {e.event_id}: timed out")
    return found
