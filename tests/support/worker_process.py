"""A LoreGuard worker (`python -m workers`) in a process group of its own, for tests that kill it with kill -9
(its CPU pool goes down with it) and start it again as a supervisor would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

TEMPORAL_WORKER = [sys.executable, "-m", "workers"]


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path, command: list[str] = TEMPORAL_WORKER) -> None:
        self.env = env
        self.log = log
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
