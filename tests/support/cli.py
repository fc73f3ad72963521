"""The `loreguard` command as tests run it: in this process through the CLI's own entry function (cli.main.run)
for what is parsing, output and exit status, or as the installed console script in a process of its own where
the process itself is under test (its exit status at interpreter exit, who the OS says is running it)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pwd
import subprocess
import sys
import threading
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from cli.main import run
from data.db import make_engine
from data.models import AuditEvent, Batch, Source

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
# The console script under test; LOREGUARD_TEST_CLI points at another one (a shared venv's script may belong to
# another checkout of the project).
ME = pwd.getpwuid(os.getuid()).pw_name  # the account of the process's user id, whatever LOGNAME says
SCRIPT = Path(os.environ.get("LOREGUARD_TEST_CLI") or Path(sys.executable).with_name("loreguard"))

_in_process = threading.Lock()


def run_in_process(args: Sequence[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """cli.main.run(args) with `env` as the whole environment and `cwd` as the working folder, its output
    captured: what the console script does, less the interpreter's start (about a second each)."""
    out, err = io.StringIO(), io.StringIO()
    with _in_process:
        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        try:
            with redirect_stdout(out), redirect_stderr(err):
                code = run(list(args))
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            os.chdir(saved_cwd)
    return subprocess.CompletedProcess(["loreguard", *args], code, out.getvalue(), err.getvalue())


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


@dataclass
class Loreguard:
    """The CLI with a private state folder, database and Temporal address.

    Called, it runs in this process (cli.main.run) when that is safe: on the main thread with no event loop
    running (the environment and the working folder are the process's own, so a test's in-process worker must
    not be running beside it); otherwise, and through `process`, as the console script in a process of its own.
    """

    folder: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return self.env["LOREGUARD_DATABASE_URL"]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        if threading.current_thread() is threading.main_thread() and not _loop_running():
            return run_in_process(args, self.env, self.folder)
        return self.process(*args, timeout=timeout)

    def process(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The installed console script, in a process of its own."""
        return subprocess.run(
            [str(SCRIPT), *args],
            env=self.env,
            cwd=self.folder,  # no stray .env from the developer's checkout
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self(*args)
        assert result.returncode == 0, f"loreguard {' '.join(args)}: {result.returncode}\n{result.stderr}"
        return result

    def counts(self) -> tuple[int, int, int]:
        """(sources, audit events, batches) in the app database."""
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return tuple(  # type: ignore[return-value]
                    conn.scalar(select(func.count()).select_from(model)) or 0
                    for model in (Source, AuditEvent, Batch)
                )
        finally:
            engine.dispose()


def cli_env(folder: Path, temporal_address: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    env.update(
        LOREGUARD_STATE_DIR=str(folder / "state"),
        LOREGUARD_DATABASE_URL=f"sqlite:///{folder / 'loreguard.db'}",
        LOREGUARD_TEMPORAL_ADDRESS=temporal_address,
        # The test's own folder and the samples may be registered as folder sources; loopback may be fetched.
        LOREGUARD_FOLDER_ROOTS=json.dumps([str(folder), str(SAMPLES)]),
        LOREGUARD_ALLOWED_HOSTS='["127.0.0.1"]',
    )
    return env
