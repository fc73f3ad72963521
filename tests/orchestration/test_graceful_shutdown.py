"""SIGTERM of a real worker process mid-batch: it stops polling, lets its running activities finish, exits 0,
and the batch completes on another worker process with every document stored exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from data import repository
from orchestration.constants import ALL_QUEUES
from tests.conftest import TemporalNamespace
from tests.support.batches import interrupted_activities
from tests.support.corpus import write_corpus
from tests.support.crash import (
    assert_stored_exactly_once,
    result_across_outages,
    stored_count,
    wait_for_progress,
)
from tests.support.operations import start_refresh
from workers.main import build_workers

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

SCRIPT = Path(sys.executable).with_name("loreguard")
GRACE = 30
DOCS = 1200


class CliWorker:
    """`loreguard worker` (all task queues) in a session of its own; its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(SCRIPT), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while "worker ready" not in self.text:
            assert self.proc.poll() is None, f"worker exited early:\n{self.text}"
            assert time.monotonic() < deadline, f"worker not ready after {timeout:.0f} s:\n{self.text}"
            time.sleep(0.1)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def worker_env(sqlite_url: str, tmp_path: Path, namespace: TemporalNamespace) -> dict[str, str]:
    return {
        **os.environ,
        **namespace.env(),
        "LOREGUARD_DATABASE_URL": sqlite_url,
        "LOREGUARD_STATE_DIR": str(tmp_path / "state"),
        "LOREGUARD_CHUNK_SIZE": "25",
        # Long enough that a loaded machine misses no heartbeat (a missed one would read as work interrupted).
        "LOREGUARD_HEARTBEAT_SECONDS": "30",
        "LOREGUARD_PROCESSING_PROCESSES": "1",
        "LOREGUARD_HEALTH_PORT": "-1",  # two workers on one machine: no fixed ports
        "LOREGUARD_METRICS_PORT": "0",
        "LOREGUARD_WORKER_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        "LOREGUARD_FOLDER_ROOTS": json.dumps([str(tmp_path)]),
    }


@pytest.fixture
def workers() -> Iterator[list[CliWorker]]:
    started: list[CliWorker] = []
    yield started
    for worker in started:
        worker.cleanup()


async def test_sigterm_mid_batch_finishes_running_work_and_exits_0(
    namespace: TemporalNamespace,
    sqlite_sessions: sessionmaker[Session],
    worker_env: dict[str, str],
    workers: list[CliWorker],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "docs"
    write_corpus(folder, DOCS, seed=11)
    with sqlite_sessions.begin() as session:
        source_id = repository.create_source(session, name="load", kind="folder", location=str(folder)).id
    client = await namespace.connect()
    first = CliWorker(worker_env, tmp_path / "first.log")
    second = CliWorker(worker_env, tmp_path / "second.log")
    workers += [first, second]
    await asyncio.to_thread(first.wait_ready)
    await asyncio.to_thread(second.wait_ready)
    assert f"shutdown grace {GRACE} s" in first.text
    batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
    await wait_for_progress(sqlite_sessions, batch_id, DOCS // 4)

    first.proc.send_signal(signal.SIGTERM)  # as Kubernetes does: to the worker process only
    code = await asyncio.to_thread(first.proc.wait, GRACE + 30)
    assert code == 0, first.text
    at_exit = stored_count(sqlite_sessions, batch_id)
    assert at_exit < DOCS, "the batch finished before the worker stopped; nothing was tested"
    assert "SIGTERM received" in first.text and "shutting down: no new tasks" in first.text
    assert "every worker stopped" in first.text and "worker stopped" in first.text

    result = await result_across_outages(handle)
    assert_stored_exactly_once(sqlite_sessions, batch_id, result, DOCS)
    # Graceful: no activity the stopping worker held was cancelled for want of time. (A chunk that ran again
    # after a heartbeat timeout is seen here too, rarely, in about one run of four under load: an open
    # question, not what this test is for; exactly-once storage above still holds then.)
    cut_short = [a for a in await interrupted_activities(client) if "did not complete in time" in a]
    assert cut_short == []


async def test_every_worker_gets_the_shutdown_grace(namespace: TemporalNamespace, sqlite_url: str) -> None:
    settings = Settings(
        database_url=sqlite_url,
        temporal_address=namespace.address,
        temporal_namespace=namespace.name,
        worker_shutdown_grace_seconds=42,
    )
    client = await namespace.connect()
    built, acts, threads = build_workers(client, settings, ALL_QUEUES, cpu_pool=None)
    try:
        assert len(built) == len(ALL_QUEUES)
        for worker in built:
            assert worker.config()["graceful_shutdown_timeout"].total_seconds() == 42
    finally:
        threads.shutdown(wait=False)
        acts.steps.http.close()
