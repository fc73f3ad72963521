"""Crash tests: kill -9 a worker (Temporal's, or the hybrid's Celery worker), or the Temporal dev server,
mid-batch; the batch completes, every document stored exactly once."""

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
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from cli.devserver import DevServer
from core.settings import Settings
from core.vocabulary import ARTIFACT_STORED
from data import repository
from data.models import Artifact, Batch, Evaluation
from orchestration.client import register_search_attributes
from orchestration.types import BatchResult
from tests.conftest import TemporalNamespace
from tests.orchestration.support import purge_celery_queue
from tests.support.corpus import write_corpus
from tests.support.operations import start_refresh

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

DOCS = 1200


TEMPORAL_WORKER = [sys.executable, "-m", "workers"]
CELERY_WORKER = [sys.executable, "-m", "cli.main", "celery-worker", "--concurrency", "2"]
VISIBILITY_TIMEOUT = 5  # seconds: Redis re-delivers a dead Celery worker's tasks once they are this old


class WorkerProcess:
    """A worker in its own process group, so kill -9 takes its process pool down with it."""

    def __init__(self, env: dict[str, str], log: Path, command: list[str] = TEMPORAL_WORKER) -> None:
        self.env = env
        self.log = log
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
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


@pytest.fixture
def worker_env(sqlite_url: str, tmp_path: Path, processing_backend: str) -> dict[str, str]:
    return {
        **os.environ,  # with the processing backend's settings (tests/conftest.py)
        "LOREGUARD_CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT),
        "LOREGUARD_DATABASE_URL": sqlite_url,
        "LOREGUARD_STATE_DIR": str(tmp_path / "state"),
        "LOREGUARD_CHUNK_SIZE": "25",
        "LOREGUARD_HEARTBEAT_SECONDS": "5",
        "LOREGUARD_PROCESSING_PROCESSES": "2",
        "LOREGUARD_FOLDER_ROOTS": json.dumps([str(tmp_path)]),  # the corpus folder is under tmp_path
    }


@pytest.fixture
def corpus_source(sqlite_sessions: sessionmaker[Session], tmp_path: Path) -> int:
    folder = tmp_path / "docs"
    write_corpus(folder, DOCS, seed=11)
    with sqlite_sessions.begin() as session:
        return repository.create_source(session, name="load", kind="folder", location=str(folder)).id


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(worker_env, tmp_path / "worker.log")
    yield proc
    proc.stop()


@pytest.fixture
def celery_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    """The hybrid's `loreguard celery-worker` (prefork, 2 processes) on the test's own queue."""
    proc = WorkerProcess(worker_env, tmp_path / "celery-worker.log", CELERY_WORKER)
    yield proc
    proc.stop()
    purge_celery_queue(Settings())


def stored_count(sessions: sessionmaker[Session], batch_id: int) -> int:
    with sessions() as session:
        return repository.artifact_status_counts(session, batch_id=batch_id).get(ARTIFACT_STORED, 0)


async def wait_for_progress(sessions: sessionmaker[Session], batch_id: int, at_least: int) -> int:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        n = stored_count(sessions, batch_id)
        if n >= at_least:
            return n
        await asyncio.sleep(0.2)
    raise TimeoutError(f"batch {batch_id} did not reach {at_least} stored documents")


async def result_across_outages(handle: WorkflowHandle[Any, BatchResult]) -> BatchResult:
    deadline = time.monotonic() + 300
    while True:
        try:
            return await handle.result()
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def assert_stored_exactly_once(sessions: sessionmaker[Session], batch_id: int, result: BatchResult) -> None:
    assert (result.total, result.stored, result.failed) == (DOCS, DOCS, 0)
    with sessions() as session:
        rows, seqs = session.execute(
            select(func.count(), func.count(func.distinct(Artifact.seq))).where(Artifact.batch_id == batch_id)
        ).one()
        assert rows == seqs == DOCS
        stored = session.scalar(
            select(func.count()).where(Artifact.batch_id == batch_id, Artifact.status == ARTIFACT_STORED)
        )
        evaluations = session.scalar(
            select(func.count()).select_from(Evaluation).join(Artifact).where(Artifact.batch_id == batch_id)
        )
        assert stored == evaluations == DOCS
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.status == "completed"


@pytest.mark.parametrize(
    ("processing_backend", "victim"),
    [
        ("temporal", "temporal worker"),
        ("celery", "celery worker"),  # the hybrid: the documents' worker dies, its tasks are re-delivered
        ("celery", "temporal worker"),  # the hybrid: the worker waiting on the Celery tasks dies
        ("celery-rabbitmq", "celery worker"),  # on RabbitMQ, which re-delivers a lost worker's tasks at once
    ],
    indirect=["processing_backend"],
)
async def test_kill_9_of_a_worker_mid_batch_loses_and_duplicates_nothing(
    namespace: TemporalNamespace,
    sqlite_sessions: sessionmaker[Session],
    corpus_source: int,
    worker: WorkerProcess,
    celery_worker: WorkerProcess,
    processing_backend: str,
    victim: str,
) -> None:
    worker.env.update(namespace.env())
    client = await namespace.connect()
    worker.start()
    if processing_backend.startswith("celery"):
        celery_worker.start()
    batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=corpus_source)
    before = await wait_for_progress(sqlite_sessions, batch_id, DOCS // 4)
    killed = celery_worker if victim == "celery worker" else worker
    killed.kill9()
    assert before < DOCS, "the batch finished before the crash; nothing was tested"
    if killed is celery_worker and processing_backend == "celery":
        # As a supervisor would restart it; once its unacknowledged tasks are older than the visibility
        # timeout, Redis hands them to the new worker when it starts. (RabbitMQ re-queues them when the
        # dead worker's connection closes: no wait.)
        await asyncio.sleep(VISIBILITY_TIMEOUT + 1)
    killed.start()
    result = await result_across_outages(handle)
    assert_stored_exactly_once(sqlite_sessions, batch_id, result)


async def test_kill_9_of_the_temporal_server_mid_batch_loses_and_duplicates_nothing(
    fresh_dev_server: DevServer,
    sqlite_sessions: sessionmaker[Session],
    corpus_source: int,
    worker: WorkerProcess,
    celery_worker: WorkerProcess,
    processing_backend: str,
) -> None:
    server = fresh_dev_server
    worker.env["LOREGUARD_TEMPORAL_ADDRESS"] = server.address
    client = await Client.connect(server.address)
    await register_search_attributes(client, "default")
    worker.start()
    if processing_backend.startswith("celery"):
        celery_worker.start()
    batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=corpus_source)
    before = await wait_for_progress(sqlite_sessions, batch_id, DOCS // 4)
    server.kill()
    assert before < DOCS, "the batch finished before the crash; nothing was tested"
    await asyncio.sleep(1)
    server.start()  # same SQLite file, same port
    result = await result_across_outages(handle)
    assert_stored_exactly_once(sqlite_sessions, batch_id, result)
