"""The Celery worker of the hybrid: the stage tasks over ranges of a batch's documents, and its entry point.

Each task runs the same chunk steps as the Temporal worker's CPU pool (process: normalize, extract, clarify;
evaluate: evaluate and store) over a range of sequence numbers, through the same idempotent store, and returns
the range's counts and metrics report as JSON. Retries: 3 attempts with exponential backoff
(orchestration/policies.py); a document that can never succeed does not raise, it fails alone inside the step.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init
from temporalio.exceptions import ApplicationError  # the error type the steps raise; no SDK state

from core.errors import ErrorType
from core.settings import Settings
from guard.confined import limit_memory
from orchestration.celery_app import EVALUATE_TASK, PROCESS_TASK, make_celery_app
from orchestration.policies import (
    CELERY_RETRY_BACKOFF_MAX_SECONDS,
    CELERY_RETRY_BACKOFF_SECONDS,
    CELERY_TASK_ATTEMPTS,
)
from orchestration.types import ChunkInput, ChunkResult
from workers.metrics import ChunkReport
from workers.stages.pipeline import warm_up
from workers.steps import BatchSteps, build_steps

log = logging.getLogger(__name__)


class ChunkTaskError(Exception):
    """A task that gave up, as it crosses the broker: args are (error type, message, non-retryable)."""

    def __init__(self, error_type: str, message: str, non_retryable: bool = False) -> None:
        super().__init__(error_type, message, non_retryable)


class _ProcessSteps:
    """One BatchSteps per process (a prefork child builds its own: engines and sockets do not survive fork)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._steps: BatchSteps | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> BatchSteps:
        with self._lock:
            if self._steps is None or self._pid != os.getpid():
                self._steps = build_steps(self.settings)
                self._pid = os.getpid()
            return self._steps


def encode(result: ChunkResult, report: ChunkReport) -> dict[str, Any]:
    """JSON for the result backend (not dataclasses.asdict: it rebuilds a Counter from (key, count) pairs)."""
    return {
        "result": asdict(result),
        "report": {
            "source": report.source,
            "stage": report.stage,
            "done": report.done,
            "failed_by_stage": dict(report.failed_by_stage),
            "labels": dict(report.labels),
            "stage_ms": {k: list(v) for k, v in report.stage_ms.items()},
            "evaluator_calls": report.evaluator_calls,
            "evaluator_errors": dict(report.evaluator_errors),
        },
    }


def decode(payload: dict[str, Any]) -> tuple[ChunkResult, ChunkReport]:
    r = payload["report"]
    report = ChunkReport(
        source=r["source"],
        stage=r["stage"],
        done=r["done"],
        failed_by_stage=Counter(r["failed_by_stage"]),
        labels=Counter(r["labels"]),
        stage_ms={k: list(v) for k, v in r["stage_ms"].items()},
        evaluator_calls=r["evaluator_calls"],
        evaluator_errors=Counter(r["evaluator_errors"]),
    )
    return ChunkResult(**payload["result"]), report


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with jitter: about 1 s, 2 s, 4 s ... at most 60 s."""
    delay = min(CELERY_RETRY_BACKOFF_MAX_SECONDS, CELERY_RETRY_BACKOFF_SECONDS * 2**retries)
    return delay * random.uniform(0.5, 1.0)


def register_tasks(app: Celery, settings: Settings) -> None:
    """Register the stage tasks on `app`, run with steps built from `settings`."""
    steps = _ProcessSteps(settings)
    # Not shared: each app (a test makes several) keeps the tasks bound to its own settings.
    options: dict[str, Any] = {"bind": True, "shared": False, "max_retries": CELERY_TASK_ATTEMPTS - 1}

    def attempt(task: Task, stage: str, batch_id: int, start_seq: int, end_seq: int) -> dict[str, Any]:
        chunk = ChunkInput(batch_id=batch_id, start_seq=start_seq, end_seq=end_seq)
        try:
            if stage == "process":
                return encode(*steps.get().process_chunk_report(chunk))
            return encode(*steps.get().evaluate_chunk_report(chunk))
        except ApplicationError as err:
            error_type, message, final = (
                err.type or ErrorType.APPLICATION_ERROR,
                err.message,
                err.non_retryable,
            )
        except Exception as err:  # a database outage, a broken connection: transient until proven otherwise
            error_type, message, final = type(err).__name__, str(err), False
        retries = task.request.retries or 0
        if final or retries >= CELERY_TASK_ATTEMPTS - 1:
            raise ChunkTaskError(error_type, message, final)
        log.warning("%s %s [%d, %d) attempt %d: %s: %s", stage, batch_id, start_seq, end_seq, retries + 1,
                    error_type, message)  # fmt: skip
        raise task.retry(countdown=backoff_seconds(retries))

    @app.task(name=PROCESS_TASK, **options)
    def process_range(task: Task, batch_id: int, start_seq: int, end_seq: int) -> dict[str, Any]:
        return attempt(task, "process", batch_id, start_seq, end_seq)

    @app.task(name=EVALUATE_TASK, **options)
    def evaluate_range(task: Task, batch_id: int, start_seq: int, end_seq: int) -> dict[str, Any]:
        return attempt(task, "evaluate", batch_id, start_seq, end_seq)


def _process_start(memory_mb: int) -> Callable[..., None]:
    def start(**_: Any) -> None:
        warm_up()  # each prefork child loads the language model before its first document
        limit_memory(memory_mb)  # then parses under the same bound as the CPU pool's processes

    return start


def run_celery_worker(settings: Settings, *, concurrency: int = 0, pool: str = "prefork") -> None:
    """`loreguard celery-worker`: consume the stage queue until stopped (SIGTERM: finish the tasks in hand)."""
    app = make_celery_app(settings)
    register_tasks(app, settings)
    worker_process_init.connect(_process_start(settings.parse_memory_mb), weak=False)
    processes = concurrency or settings.celery_concurrency or (os.cpu_count() or 1)
    worker = app.Worker(
        hostname=f"loreguard-{os.getpid()}@{socket.gethostname()}",
        queues=[settings.celery_queue],
        concurrency=processes,
        pool=pool,
        loglevel="INFO",
        optimization="fair",  # a long task does not hold back the ones prefetched behind it
        without_mingle=True,
        without_gossip=True,
    )
    worker.start()
