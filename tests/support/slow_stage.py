"""A deliberately slow normalize stage for the CPU pool's per-document time limit, installed in pool processes.

`init_process` is given to a test's ProcessPoolExecutor as its initializer: it runs the product's own
initializer, then swaps normalize for one that runs SLOW_SECONDS (far past the limit) on a document containing SLOW_MARKER (other
documents are normalized as usual). The product code has no hook for this.

`held_env` holds a whole batch in flight instead: every document slowed while a file exists (held/).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from core.settings import Settings
from guard.types import RawDocument
from workers import pool
from workers.stages import pipeline
from workers.stages.types import NormalizedDocument

SLOW_MARKER = b"[this document takes forever]"
SLOW_SECONDS = 8.0  # "forever": far past any limit a test sets, yet short enough to fail fast without one

_real_normalize = pipeline.normalize


def _slow_normalize(raw: RawDocument, **options: Any) -> NormalizedDocument:
    if SLOW_MARKER in raw.data:
        # Pure Python work past any limit a test sets: only the time limit stops it. Without one it ends after
        # SLOW_SECONDS, so a test of the limit fails on what it finds instead of hanging until its timeout.
        until = time.monotonic() + SLOW_SECONDS
        while time.monotonic() < until:
            sum(range(1000))
    return _real_normalize(raw, **options)


def init_process(settings: Settings, worker_pid: int) -> None:
    pool._init_process(settings, worker_pid)
    pipeline.normalize = _slow_normalize


HELD = Path(__file__).with_name("held")  # its sitecustomize.py slows normalize while a hold file exists


def held_env(env: dict[str, str], hold_file: Path, seconds_per_document: float = 0.05) -> dict[str, str]:
    """`env` for a worker process whose documents stay in flight while `hold_file` exists (each takes
    `seconds_per_document` longer at normalize, in every process the worker starts); the file is created."""
    hold_file.touch()
    path = os.pathsep.join(p for p in (str(HELD), env.get("PYTHONPATH", "")) if p)
    return {
        **env,
        "PYTHONPATH": path,
        "LOREGUARD_TEST_HOLD_FILE": str(hold_file),
        "LOREGUARD_TEST_HOLD_SECONDS": str(seconds_per_document),
    }
