"""Worker entrypoint: one process serving the chosen task queues (all of them by default)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, nullcontext, suppress
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from core.settings import Settings
from data.migrate import SchemaCheck
from orchestration.celery_app import make_celery_app
from orchestration.chunks import ChunkRangeWorkflow
from orchestration.client import connect
from orchestration.constants import (
    ALL_QUEUES,
    EVALUATION_QUEUE,
    INGESTION_QUEUE,
    PROCESSING_QUEUE,
    SCHEDULER_QUEUE,
)
from orchestration.reevaluation import ReevaluationWorkflow
from orchestration.scheduled import ScheduledRefreshWorkflow, SlaMonitorWorkflow
from orchestration.workflows import BatchWorkflow
from workers.activities import PipelineActivities
from workers.celery_chunks import CeleryChunks
from workers.metrics import HealthChecks, ObservabilityServer, WorkerMetrics
from workers.pool import CpuPool
from workers.steps import build_steps
from workers.task_queues import backlog_monitor

log = logging.getLogger(__name__)


def build_workers(
    client: Client,
    settings: Settings,
    queues: Sequence[str],
    *,
    cpu_pool: CpuPool | None,
    metrics: WorkerMetrics | None = None,
) -> tuple[list[Worker], PipelineActivities, ThreadPoolExecutor]:
    celery = None
    if settings.processing_backend == "celery":
        celery = CeleryChunks(make_celery_app(settings), settings)
    acts = PipelineActivities(build_steps(settings), cpu_pool, metrics, celery)
    threads = ThreadPoolExecutor(
        max_workers=settings.ingestion_concurrency
        + settings.processing_concurrency
        + settings.evaluation_concurrency
        + 4,
        thread_name_prefix="activity",
    )
    # On shutdown every worker stops polling at once; running activities get the grace period to finish, then
    # are cancelled (a sync activity sees it at its next heartbeat) and retried on another worker.
    grace = timedelta(seconds=settings.worker_shutdown_grace_seconds)
    # Heartbeats reach Temporal at most this far apart (else 80% of the heartbeat timeout): a cancelled batch's
    # activities learn of it, and stop, within this time.
    throttle = timedelta(seconds=settings.cancel_check_seconds)
    workers: list[Worker] = []
    if SCHEDULER_QUEUE in queues:
        workers.append(
            Worker(
                client,
                task_queue=SCHEDULER_QUEUE,
                workflows=[
                    BatchWorkflow,
                    ChunkRangeWorkflow,
                    ScheduledRefreshWorkflow,
                    SlaMonitorWorkflow,
                    ReevaluationWorkflow,
                ],
                graceful_shutdown_timeout=grace,
            )
        )
    if INGESTION_QUEUE in queues:
        workers.append(
            Worker(
                client,
                task_queue=INGESTION_QUEUE,
                activities=acts.bookkeeping(),
                activity_executor=threads,
                max_heartbeat_throttle_interval=throttle,
                default_heartbeat_throttle_interval=throttle,
                max_concurrent_activities=settings.ingestion_concurrency,
                graceful_shutdown_timeout=grace,
            )
        )
    if PROCESSING_QUEUE in queues:
        workers.append(
            Worker(
                client,
                task_queue=PROCESSING_QUEUE,
                activities=[acts.process_chunk],
                activity_executor=threads,
                max_heartbeat_throttle_interval=throttle,
                default_heartbeat_throttle_interval=throttle,
                max_concurrent_activities=settings.processing_concurrency,
                graceful_shutdown_timeout=grace,
            )
        )
    if EVALUATION_QUEUE in queues:
        workers.append(
            Worker(
                client,
                task_queue=EVALUATION_QUEUE,
                activities=[acts.evaluate_chunk, acts.reevaluate_page],
                activity_executor=threads,
                max_heartbeat_throttle_interval=throttle,
                default_heartbeat_throttle_interval=throttle,
                max_concurrent_activities=settings.evaluation_concurrency,
                max_task_queue_activities_per_second=settings.evaluation_rate_limit,
                graceful_shutdown_timeout=grace,
            )
        )
    return workers, acts, threads


async def run_worker(
    settings: Settings,
    queues: Sequence[str] = ALL_QUEUES,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run workers for `queues` until `stop` is set (a graceful shutdown, then return) or until cancelled."""
    unknown = set(queues) - set(ALL_QUEUES)
    if unknown:
        raise ValueError(f"unknown task queue(s): {', '.join(sorted(unknown))}")
    client = await connect(settings, runtime=sdk_metrics_runtime(settings))
    # With the celery backend the stages run on Celery workers: this process needs no CPU pool.
    local_cpu = PROCESSING_QUEUE in queues and settings.processing_backend == "temporal"
    cpu_pool = CpuPool(settings) if local_cpu else None
    metrics = WorkerMetrics()
    workers, acts, threads = build_workers(client, settings, queues, cpu_pool=cpu_pool, metrics=metrics)
    try:
        if settings.worker_wait_for_schema and not await wait_for_schema(
            settings, acts.steps.sessions, metrics, stop or asyncio.Event()
        ):
            return  # stopped while waiting: nothing was polled
        log.info("worker polling %s (processing backend: %s)", ", ".join(queues), settings.processing_backend)
        # The process serving the scheduler queue (where the SLA monitor runs) also samples the backlog.
        monitor = SCHEDULER_QUEUE in queues
        async with (
            _AllWorkers(workers),
            observability(settings, client, workers, acts.steps.sessions, metrics),
            backlog_monitor(client, settings, acts.steps.sessions) if monitor else nullcontext(),
        ):
            if ready is not None:
                ready.set()
            await (stop or asyncio.Event()).wait()
            log.info(
                "shutting down: no new tasks; running activities get up to %g s to finish",
                settings.worker_shutdown_grace_seconds,
            )
        log.info("every worker stopped: all activities finished or handed back")
    finally:
        threads.shutdown(wait=False, cancel_futures=True)
        if cpu_pool is not None:
            _stop_pool(cpu_pool)
        acts.steps.http.close()


async def wait_for_schema(
    settings: Settings, sessions: sessionmaker[Session], metrics: WorkerMetrics, stop: asyncio.Event
) -> bool:
    """Before polling: wait while the database's schema is older than this code (a rollout whose setup Job has
    not run yet), serving /health meanwhile (alive; not ready, naming the schema). False when `stop` came first.
    A database that does not answer is not waited for: the readiness check reports it as before."""
    migrations = SchemaCheck()

    def behind() -> str | None:
        try:
            with sessions() as session:
                return migrations.behind(session.connection())
        except SQLAlchemyError:
            return None

    problem = await asyncio.to_thread(behind)
    if problem is None:
        return True
    log.warning("not polling yet: %s; waiting for it", problem)
    checks = HealthChecks(live=lambda: None, ready={"schema": lambda: problem})
    server: ObservabilityServer | None = None
    if settings.health_port >= 0:
        try:
            server = ObservabilityServer(
                settings.metrics_address, settings.health_port, metrics, checks
            ).start()
        except OSError as exc:
            log.error("health endpoint disabled while waiting for the schema: %s", exc)
    try:
        while problem is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            if stop.is_set():
                return False
            problem = await asyncio.to_thread(behind)
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
    log.info("the database schema is at revision %s", migrations.head)
    return True


def _stop_pool(pool: CpuPool, wait: float = 5.0) -> None:
    """Idle after a graceful shutdown; a chunk still computing for a cancelled activity is not waited for
    long: its pool process leaves with the worker, and the retried chunk rewrites the same rows."""
    stopper = threading.Thread(target=pool.shutdown, kwargs={"cancel_futures": True}, daemon=True)
    stopper.start()
    stopper.join(wait)


def stop_on_signals(stop: asyncio.Event, on_second: Callable[[], object]) -> None:
    """SIGTERM (Kubernetes, compose, `up`) and SIGINT (Ctrl-C) start a graceful shutdown; a second one calls
    `on_second` (stop at once: whatever is still running is retried on another worker)."""
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        if stop.is_set():
            log.warning("%s again: stopping now", signal.Signals(signum).name)
            on_second()
            return
        log.info("%s received", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handle, signum)


class _AllWorkers:
    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def __aenter__(self) -> None:
        for w in self.workers:
            await w.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(w.__aexit__(None, None, None) for w in self.workers))


def sdk_metrics_runtime(settings: Settings) -> Runtime | None:
    """A runtime exporting the Temporal SDK's metrics on metrics_port (None when the port is 0)."""
    if not settings.metrics_port:
        return None
    bind = f"{settings.metrics_address}:{settings.metrics_port}"
    if not _can_bind(settings.metrics_address, settings.metrics_port):
        # Metrics must not stop the work: say so loudly, and process documents without them.
        log.error("Temporal SDK metrics disabled: %s is in use (set LOREGUARD_METRICS_PORT)", bind)
        return None
    log.info("Temporal SDK metrics on http://%s/metrics", bind)
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))


def _can_bind(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def health_checks(
    client: Client,
    workers: Sequence[Worker],
    sessions: sessionmaker[Session],
    loop: asyncio.AbstractEventLoop,
    *,
    timeout: float = 2.0,
) -> HealthChecks:
    """Liveness: every worker is running (polling). Readiness: Temporal and the app database answer, and the
    database's schema is not older than this code (its migration head)."""

    def live() -> str | None:
        stopped = [w.task_queue for w in workers if not w.is_running]
        return f"not polling: {', '.join(stopped)}" if stopped else None

    def temporal() -> str | None:
        call = client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=timeout)
        )
        try:
            asyncio.run_coroutine_threadsafe(call, loop).result(timeout + 0.5)
        except TimeoutError:
            return f"no answer from {client.service_client.config.target_host} within {timeout:g} s"
        return None

    def database() -> str | None:
        with sessions() as session:
            session.execute(text("select 1"))
        return None

    migrations = SchemaCheck()

    def schema() -> str | None:
        # Not ready on a schema older than this code: during a rollout the new pods wait for the setup Job.
        try:
            with sessions() as session:
                return migrations.behind(session.connection())
        except SQLAlchemyError:
            return None  # no answer at all: the database check says so

    return HealthChecks(live=live, ready={"temporal": temporal, "database": database, "schema": schema})


@asynccontextmanager
async def observability(
    settings: Settings,
    client: Client,
    workers: Sequence[Worker],
    sessions: sessionmaker[Session],
    metrics: WorkerMetrics,
) -> AsyncIterator[ObservabilityServer | None]:
    """LoreGuard's /metrics and /health on health_port while the workers run (nothing when it is -1)."""
    if settings.health_port < 0:
        yield None
        return
    checks = health_checks(client, workers, sessions, asyncio.get_running_loop())
    try:
        server = ObservabilityServer(settings.metrics_address, settings.health_port, metrics, checks).start()
    except OSError as exc:
        log.error(
            "metrics and health endpoint disabled: cannot bind %s:%d (%s); set LOREGUARD_HEALTH_PORT",
            settings.metrics_address,
            settings.health_port,
            exc,
        )
        yield None
        return
    log.info("metrics and health on http://%s:%d/", settings.metrics_address, server.port)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
