"""CPU pool for the processing step: whole chunks run in worker processes, each with its own clients.

One Python process runs CPU-bound code on one core (the GIL), so the worker hands each chunk's processing
(load, normalize, extract, clarify, write) to a pool process; the activity thread only waits and heartbeats.
Each pool process parses under an address-space limit (LOREGUARD_PARSE_MEMORY_MB): a document that needs more
fails alone with MemoryError as its reason. Should a pool process die all the same, `CpuPool` starts a new
pool and goes through the chunk one document at a time, so only a document that kills a process fails.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TypeVar

from temporalio.exceptions import ApplicationError

from core.settings import Settings
from core.vocabulary import Stage
from guard.confined import limit_memory
from orchestration.types import ChunkFailureInput, ChunkInput, ChunkResult
from workers.metrics import ChunkReport
from workers.stages.pipeline import warm_up
from workers.steps import BatchSteps, build_steps
from workers.steps_base import Heartbeat

T = TypeVar("T")
log = logging.getLogger(__name__)

_steps: BatchSteps | None = None  # one per pool process, built by the initializer


def _init_process(settings: Settings, worker_pid: int) -> None:
    global _steps
    # The worker decides when its pool stops: a Ctrl-C or SIGTERM sent to the whole process group must not
    # kill a chunk in the middle of its graceful shutdown. The pool still leaves with the worker (below).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    warm_up()
    _steps = build_steps(settings)
    if evaluates_in_pool(settings):
        _steps.evaluator.warm_up()  # type: ignore[attr-defined]  # the model loads before the memory bound
    threading.Thread(target=_exit_with_worker, args=(worker_pid,), daemon=True).start()
    # Last, once the process is built: the bound is for what documents make the parsers allocate.
    limit_memory(settings.parse_memory_mb)


def _exit_with_worker(worker_pid: int) -> None:
    """A pool process outliving its worker (kill -9 of the worker alone) would idle forever: leave with it."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            os._exit(1)


def _process_chunk(input: ChunkInput) -> tuple[ChunkResult, ChunkReport]:
    if _steps is None:
        raise RuntimeError("pool process not initialised")
    return _steps.process_chunk_report(input)


def evaluates_in_pool(settings: Settings) -> bool:
    """The semantic evaluator is CPU work (a model on the CPU): its chunks run in the pool beside the process
    stages, on every core. An API evaluator waits on the network: its chunks stay on the worker's threads."""
    return settings.evaluator == "semantic"


@dataclass(frozen=True)
class _Refused:
    """An ApplicationError raised in a pool process, carried back as data (its keyword arguments do not
    survive pickling) and raised again in the worker, where Temporal sees it."""

    message: str
    type: str | None
    non_retryable: bool


def _evaluate_chunk(input: ChunkInput) -> tuple[ChunkResult, ChunkReport] | _Refused:
    if _steps is None:
        raise RuntimeError("pool process not initialised")
    try:
        return _steps.evaluate_chunk_report(input)
    except ApplicationError as err:
        return _Refused(err.message, err.type, err.non_retryable)


def make_cpu_pool(settings: Settings) -> ProcessPoolExecutor:
    """forkserver, not fork: the worker has Temporal's runtime threads, which a fork would copy half-alive."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["workers.pool"])
    return ProcessPoolExecutor(
        max_workers=settings.cpu_processes,
        mp_context=ctx,
        initializer=_init_process,
        initargs=(settings, os.getpid()),
    )


def wait_with_heartbeats(future: Future[T], heartbeat: Heartbeat, every: float = 5.0) -> T:
    while True:
        try:
            return future.result(timeout=every)
        except FutureTimeout:
            heartbeat()


def process_chunk_in_pool(
    pool: ProcessPoolExecutor, input: ChunkInput, heartbeat: Heartbeat
) -> tuple[ChunkResult, ChunkReport]:
    """The chunk's result and its metrics report (recorded by the caller, in the worker process)."""
    return wait_with_heartbeats(pool.submit(_process_chunk, input), heartbeat)


FailDocuments = Callable[[ChunkFailureInput], int]
DIED = (
    "its processing process died while working on it, twice (a parser crash, or memory beyond what "
    "LOREGUARD_PARSE_MEMORY_MB lets it raise as an error); the CPU pool was restarted and the chunk went on"
)


class CpuPool:
    """The worker's process pool, replaced by a new one when a process of it dies (BrokenProcessPool).

    A dead process breaks the whole executor and every chunk in flight on it. Each of those chunks then goes
    through its documents one at a time on the new pool, so the document that kills a process is found and
    failed with that reason (after a second try: the first death may have been another chunk's), and every
    other document is processed as usual.
    """

    def __init__(
        self, settings: Settings, *, factory: Callable[[], ProcessPoolExecutor] | None = None
    ) -> None:
        self._factory = factory or (lambda: make_cpu_pool(settings))
        self._lock = threading.Lock()
        self._executor = self._factory()
        self.restarts = 0

    @property
    def executor(self) -> ProcessPoolExecutor:
        return self._executor

    def shutdown(self, *, cancel_futures: bool = True) -> None:
        self._executor.shutdown(cancel_futures=cancel_futures)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:  # the chunks that saw it break replace it once
                log.warning("a CPU pool process died: starting a new pool")
                self._executor = self._factory()
                self.restarts += 1
                broken.shutdown(wait=False, cancel_futures=True)

    def _run(self, input: ChunkInput, heartbeat: Heartbeat) -> tuple[ChunkResult, ChunkReport]:
        executor = self._executor
        try:
            return wait_with_heartbeats(executor.submit(_process_chunk, input), heartbeat)
        except BrokenProcessPool:
            self._replace(executor)
            raise

    def evaluate_chunk(self, input: ChunkInput, heartbeat: Heartbeat) -> tuple[ChunkResult, ChunkReport]:
        """Evaluate and store a chunk in a pool process. A process that dies fails the activity, which
        Temporal retries (evaluating is idempotent: stored documents are not picked up again)."""
        executor = self._executor
        try:
            outcome = wait_with_heartbeats(executor.submit(_evaluate_chunk, input), heartbeat)
        except BrokenProcessPool:
            self._replace(executor)
            raise
        if isinstance(outcome, _Refused):
            raise ApplicationError(outcome.message, type=outcome.type, non_retryable=outcome.non_retryable)
        return outcome

    def process_chunk(
        self, input: ChunkInput, heartbeat: Heartbeat, fail: FailDocuments
    ) -> tuple[ChunkResult, ChunkReport]:
        """The chunk's result and report; `fail` marks a document failed (BatchSteps.fail_chunk)."""
        try:
            return self._run(input, heartbeat)
        except BrokenProcessPool:
            log.warning("chunk %s: its pool process died; going on one document at a time", input)
        done = failed = 0
        report = ChunkReport(stage="process")
        for seq in range(input.start_seq, input.end_seq):
            one = ChunkInput(input.batch_id, seq, seq + 1)
            for attempt in (1, 2):
                try:
                    result, part = self._run(one, heartbeat)
                except BrokenProcessPool:
                    if attempt == 2:
                        lost = fail(ChunkFailureInput(input.batch_id, seq, seq + 1, DIED))
                        failed += lost
                        report.failed_by_stage[Stage.NORMALIZE] += lost
                    continue
                done, failed = done + result.done, failed + result.failed
                _merge(report, part)
                break
        report.done = done
        return ChunkResult(done=done, failed=failed), report


def _merge(into: ChunkReport, part: ChunkReport) -> None:
    into.source = into.source or part.source
    into.failed_by_stage.update(part.failed_by_stage)
    for stage, values in part.stage_ms.items():
        into.stage_ms.setdefault(stage, []).extend(values)
