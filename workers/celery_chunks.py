"""The chunk activities' Celery side (LOREGUARD_PROCESSING_BACKEND=celery): split the chunk into tasks of
`celery_task_documents` documents, send them to the stage queue, and wait for them while heartbeating.

The workflow holds one activity per chunk, as on Temporal alone; the documents run on Celery workers. A task
that gave up after its retries fails the activity with its error type, so the workflow's chunk retry policy and
`fail_chunk` treat it as they treat a chunk that failed on Temporal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from celery import Celery
from celery.result import AsyncResult
from temporalio.exceptions import ApplicationError

from core.settings import Settings
from orchestration.types import ChunkInput, ChunkResult
from workers.celery_tasks import decode
from workers.metrics import ChunkReport
from workers.steps_base import Heartbeat

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 2.0  # seconds between heartbeats while tasks run (the SDK throttles further)
POLL_MIN, POLL_MAX = 0.02, 0.25  # seconds between looks at the results: short at first, for small tasks


class CeleryChunks:
    """Runs chunk activities' work as Celery tasks; thread-safe (one per worker process)."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.queue = settings.celery_queue
        self.task_documents = settings.celery_task_documents

    def ranges(self, input: ChunkInput) -> list[tuple[int, int]]:
        size = self.task_documents
        return [(s, min(s + size, input.end_seq)) for s in range(input.start_seq, input.end_seq, size)]

    def run(
        self, task: str, input: ChunkInput, heartbeat: Heartbeat
    ) -> tuple[ChunkResult, list[ChunkReport]]:
        """Send the chunk's tasks, wait for all of them, and return the summed counts and their reports."""
        results = [
            self.app.send_task(task, args=(input.batch_id, start, end), queue=self.queue)
            for start, end in self.ranges(input)
        ]
        try:
            self._wait(results, heartbeat)
            return self._collect(task, input, results)
        except BaseException:
            # Cancelled or timed out: the tasks still queued need not run (a retry sends them again).
            for r in results:
                if not r.ready():
                    r.revoke()
            raise
        finally:
            for r in results:
                r.forget()

    def _wait(self, results: Sequence[AsyncResult], heartbeat: Heartbeat) -> None:
        pending = list(results)
        interval, beat = POLL_MIN, time.monotonic()
        while pending:
            pending = [r for r in pending if not r.ready()]
            if not pending:
                return
            if time.monotonic() - beat >= HEARTBEAT_EVERY:
                heartbeat(len(results) - len(pending))  # tasks finished so far
                beat = time.monotonic()
            time.sleep(interval)
            interval = min(interval * 1.5, POLL_MAX)

    def _collect(
        self, task: str, input: ChunkInput, results: Sequence[AsyncResult]
    ) -> tuple[ChunkResult, list[ChunkReport]]:
        done = failed = 0
        reports: list[ChunkReport] = []
        failure: tuple[str, str, bool] | None = None
        for r in results:
            if r.successful():
                result, report = decode(r.result)
                done += result.done
                failed += result.failed
                reports.append(report)
            elif failure is None:
                failure = _failure(r.result)
        if failure is not None:
            error_type, message, non_retryable = failure
            log.warning("%s of batch %s [%d, %d) gave up: %s: %s", task, input.batch_id, input.start_seq,
                        input.end_seq, error_type, message)  # fmt: skip
            # What the other tasks finished is stored; the activity's retry redoes only what is left.
            raise ApplicationError(message, type=error_type, non_retryable=non_retryable)
        return ChunkResult(done=done, failed=failed), reports


def _failure(exc: object) -> tuple[str, str, bool]:
    """(error type, message, non-retryable) of a failed task's exception, rebuilt by Celery or not."""
    args: tuple[object, ...] = tuple(getattr(exc, "args", ()))
    if type(exc).__name__ == "ChunkTaskError" and len(args) == 3:
        return str(args[0]), str(args[1]), bool(args[2])
    return type(exc).__name__, str(exc), False
