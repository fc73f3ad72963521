"""A normalize stage that kills its own process on a marked document, for the CPU pool's recovery tests.

`init_process` is a test pool's initializer: the product's own, then normalize swapped for one that sends
SIGKILL to its process on a document containing CRASH_MARKER (what a parser crashing in C looks like from
outside); other documents are normalized as usual. The product code has no hook for this.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from core.settings import Settings
from guard.types import RawDocument
from workers import pool
from workers.stages import pipeline
from workers.stages.types import NormalizedDocument

CRASH_MARKER = b"[this document kills its process]"

_real_normalize = pipeline.normalize


def _crashing_normalize(raw: RawDocument, **options: Any) -> NormalizedDocument:
    if CRASH_MARKER in raw.data:
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_normalize(raw, **options)


def init_process(settings: Settings, worker_pid: int) -> None:
    pool._init_process(settings, worker_pid)
    pipeline.normalize = _crashing_normalize
