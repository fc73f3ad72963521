"""Stopping a child process: SIGTERM, a grace period, then SIGKILL (of its whole process group if it leads one)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress


def stop_process(
    process: subprocess.Popen[bytes],
    *,
    timeout: float = 10.0,
    group: bool = False,
    hurry: Callable[[], bool] = lambda: False,
    terminate: bool = True,
) -> bool:
    """Stop `process` and reap it; True when it stopped by itself within `timeout` (else it was killed).

    `group`: the process leads a session of its own (start_new_session); after it exits, anything it started
    is killed with it. `hurry()` returning True cuts the grace period short (a second Ctrl-C).
    """
    if terminate and process.poll() is None:
        with suppress(ProcessLookupError):
            process.terminate()
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline and not hurry():
        time.sleep(0.05)
    graceful = process.poll() is not None
    if group:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # the child and anything it started
    elif not graceful:
        with suppress(ProcessLookupError):
            process.kill()
    process.wait()
    return graceful
