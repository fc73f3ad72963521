"""A deliberately slow normalize stage for the CPU pool's per-document time limit, installed in pool processes.

`init_process` is given to a test's ProcessPoolExecutor as its initializer: it runs the product's own
initializer, then swaps normalize for one that never ends on a document containing SLOW_MARKER (other
documents are normalized as usual). The product code has no hook for this.
"""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from workers import pool
from workers.stages import pipeline
from workers.stages.types import NormalizedDocument, RawDocument

SLOW_MARKER = b"[this document takes forever]"

_real_normalize = pipeline.normalize


def _slow_normalize(raw: RawDocument, **options: Any) -> NormalizedDocument:
    if SLOW_MARKER in raw.data:
        while True:  # pure Python work that never ends: only the time limit stops it
            sum(range(1000))
    return _real_normalize(raw, **options)


def init_process(settings: Settings, worker_pid: int) -> None:
    pool._init_process(settings, worker_pid)
    pipeline.normalize = _slow_normalize
