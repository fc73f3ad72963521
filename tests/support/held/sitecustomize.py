"""Loaded by every Python process started with this folder on PYTHONPATH (tests/support/slow_stage.py's
`held_env`): the worker, its CPU pool (forkserver) and Celery's prefork children alike. While the file named by
LOREGUARD_TEST_HOLD_FILE exists, normalize takes LOREGUARD_TEST_HOLD_SECONDS longer per document (and `<file>.seen`
appears once one is held), so a small batch stays in flight until the test has done its damage (kill -9, SIGTERM) and removes the file.

Self-contained on purpose: it runs before the test's folder is on sys.path.
"""

from __future__ import annotations

import os

if os.environ.get("LOREGUARD_TEST_HOLD_FILE"):
    import time
    from typing import Any

    from workers.stages import pipeline

    _hold_file = os.environ["LOREGUARD_TEST_HOLD_FILE"]
    _hold_seconds = float(os.environ.get("LOREGUARD_TEST_HOLD_SECONDS", "0.05"))
    _real_normalize = pipeline.normalize

    def _held_normalize(*args: Any, **kwargs: Any) -> Any:
        if os.path.exists(_hold_file):
            open(_hold_file + ".seen", "a").close()  # a document is being held now: the test may strike
            time.sleep(_hold_seconds)
        return _real_normalize(*args, **kwargs)

    pipeline.normalize = _held_normalize
