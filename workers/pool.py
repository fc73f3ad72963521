"""CPU pool for the processing step: whole chunks run in worker processes, each with its own clients.

One Python process runs CPU-bound code on one core (the GIL), so the worker hands each chunk's processing
(load, normalize, extract, clarify, write) to a pool process; the activity thread only waits and heartbeats.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from core.settings import Settings
from orchestration.types import ChunkInput, ChunkResult
from workers.metrics import ChunkReport
from workers.stages.pipeline import warm_up
from workers.steps import BatchSteps, build_steps
from workers.steps_base import Heartbeat

T = TypeVar("T")

_steps: BatchSteps | None = None  # one per pool process, built by the initializer


def _init_process(settings: Settings, worker_pid: int) -> None:
    global _steps
    # The worker decides when its pool stops: a Ctrl-C or SIGTERM sent to the whole process group must not
    # kill a chunk in the middle of its graceful shutdown. The pool still leaves with the worker (below).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    warm_up()
    _steps = build_steps(settings)
    threading.Thread(target=_exit_with_worker, args=(worker_pid,), daemon=True).start()


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
