"""The CPU-bound stages of one document (normalize, extract), run in a process pool.

Everything here is top-level and made of dataclasses so it pickles across the pool. A document gets a time
limit: in a pool process (the main thread of its process) an interval timer interrupts a stage that runs
over it, so that document fails alone and the process goes on with the next one. A stage that runs out of
memory (the pool's processes parse under an address-space limit) fails its document alone the same way.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from core.vocabulary import Stage
from guard.confined import out_of_memory_reason
from guard.types import DocumentError, RawDocument
from workers.stages.extract import extract_metadata
from workers.stages.normalize import DEFAULT_MAX_PDF_PAGES, normalize, preload_language_model
from workers.stages.types import DocumentMetadata, NormalizedDocument

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class CpuStageResult:
    normalized: NormalizedDocument | None
    metadata: DocumentMetadata | None
    failed_stage: str | None
    error: str | None
    normalize_ms: float
    extract_ms: float

    @property
    def ok(self) -> bool:
        return self.failed_stage is None


def warm_up() -> None:
    """Process-pool initializer: load the language model before the first document arrives."""
    preload_language_model()


def _timed(stage: Callable[[In], Out], arg: In, name: str) -> tuple[Out | None, str | None, float]:
    """(result, failure reason, milliseconds) of one stage call."""
    started = time.perf_counter()
    try:
        result, error = stage(arg), None
    except DocumentError as exc:
        result, error = None, exc.reason
    except MemoryError:
        # Under the pool's address-space limit (LOREGUARD_PARSE_MEMORY_MB) a document that wants more memory
        # gets MemoryError here; what it allocated is freed as the stage unwinds, and the process goes on.
        result, error = None, out_of_memory_reason(name)
    except Exception as exc:  # a library bug on odd input is still only this document's problem
        result, error = None, f"unexpected error: {type(exc).__name__}: {exc}"
    return result, error, (time.perf_counter() - started) * 1000


class _OutOfTime(BaseException):
    """Raised by the timer inside a stage. A BaseException, so no stage's `except Exception` swallows it."""


def _out_of_time(signum: int, frame: object) -> None:
    raise _OutOfTime


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after `seconds` with _OutOfTime (SIGALRM), where signals can be used.

    Only the main thread of a process may handle signals: a pool process runs its tasks there, and so does the
    dashboard's dry run (in a confined process of its own). Elsewhere (a
    worker without a pool) the block runs without a limit.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _out_of_time)
    started = time.monotonic()
    earlier_delay, earlier_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)
            if earlier_delay > 0:  # someone else's timer (a test runner's, say) runs on
                left = max(earlier_delay - (time.monotonic() - started), 0.001)
                signal.setitimer(signal.ITIMER_REAL, left, earlier_interval)


def run_cpu_stages(
    raw: RawDocument, *, max_pdf_pages: int = DEFAULT_MAX_PDF_PAGES, time_limit: float = 0
) -> CpuStageResult:
    """Normalize then extract one document; never raises, so one bad document cannot fail a batch.

    `time_limit` (seconds, 0 = none) bounds both stages together; a document over it fails at the stage it
    was in, with the limit as its reason.
    """
    started = time.perf_counter()
    stage, normalized = Stage.NORMALIZE, None
    normalize_ms = 0.0
    try:
        with _time_limit(time_limit):
            normalized, error, normalize_ms = _timed(
                partial(normalize, max_pdf_pages=max_pdf_pages), raw, Stage.NORMALIZE
            )
            if normalized is None:
                return CpuStageResult(None, None, Stage.NORMALIZE, error, normalize_ms, 0.0)
            stage = Stage.EXTRACT
            metadata, error, extract_ms = _timed(extract_metadata, normalized, Stage.EXTRACT)
    except _OutOfTime:
        elapsed = (time.perf_counter() - started) * 1000
        reason = (
            f"took longer than {time_limit:g} s (LOREGUARD_DOCUMENT_TIME_LIMIT_SECONDS); stopped at {stage}"
        )
        if stage == Stage.NORMALIZE:
            return CpuStageResult(None, None, stage, reason, elapsed, 0.0)
        return CpuStageResult(normalized, None, stage, reason, normalize_ms, elapsed - normalize_ms)
    if metadata is None:
        return CpuStageResult(normalized, None, Stage.EXTRACT, error, normalize_ms, extract_ms)
    return CpuStageResult(normalized, metadata, None, None, normalize_ms, extract_ms)


def run_cpu_stages_each(
    job: tuple[Sequence[RawDocument], int, float],
) -> list[CpuStageResult]:
    """`run_cpu_stages` over `(documents, max_pdf_pages, time_limit)`, for one confined process (the dry run)."""
    documents, max_pdf_pages, time_limit = job
    warm_up()
    return [run_cpu_stages(raw, max_pdf_pages=max_pdf_pages, time_limit=time_limit) for raw in documents]


def failed_everywhere(documents: Sequence[RawDocument], reason: str) -> list[CpuStageResult]:
    """The same failure for every document: what a dry run shows when its parsing process did not finish."""
    return [CpuStageResult(None, None, Stage.NORMALIZE, reason, 0.0, 0.0) for _ in documents]
