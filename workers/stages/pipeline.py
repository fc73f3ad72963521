"""The CPU-bound stages of one document (normalize, extract), run in a process pool.

Everything here is top-level and made of dataclasses so it pickles across the pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from workers.stages.extract import extract_metadata
from workers.stages.normalize import DEFAULT_MAX_PDF_PAGES, normalize, preload_language_model
from workers.stages.types import DocumentError, DocumentMetadata, NormalizedDocument, RawDocument

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


def _timed(stage: Callable[[In], Out], arg: In) -> tuple[Out | None, str | None, float]:
    """(result, failure reason, milliseconds) of one stage call."""
    started = time.perf_counter()
    try:
        result, error = stage(arg), None
    except DocumentError as exc:
        result, error = None, exc.reason
    except Exception as exc:  # a library bug on odd input is still only this document's problem
        result, error = None, f"unexpected error: {type(exc).__name__}: {exc}"
    return result, error, (time.perf_counter() - started) * 1000


def run_cpu_stages(raw: RawDocument, *, max_pdf_pages: int = DEFAULT_MAX_PDF_PAGES) -> CpuStageResult:
    """Normalize then extract one document; never raises, so one bad document cannot fail a batch."""
    normalized, error, normalize_ms = _timed(partial(normalize, max_pdf_pages=max_pdf_pages), raw)
    if normalized is None:
        return CpuStageResult(None, None, "normalize", error, normalize_ms, 0.0)
    metadata, error, extract_ms = _timed(extract_metadata, normalized)
    if metadata is None:
        return CpuStageResult(normalized, None, "extract", error, normalize_ms, extract_ms)
    return CpuStageResult(normalized, metadata, None, None, normalize_ms, extract_ms)
