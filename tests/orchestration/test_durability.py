"""Crash tests: kill -9 a worker (Temporal's, or the hybrid's Celery worker), or the Temporal dev server,
mid-batch; the batch completes, every document stored exactly once."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from cli.devserver import DevServer
from core.settings import Settings
from orchestration.client import register_search_attributes
from tests.conftest import TemporalNamespace
from tests.support.batches import purge_celery_queue
from tests.support.corpus import write_corpus
from tests.support.crash import (
    CELERY_WORKER,
    WorkerProcess,
    assert_stored_exactly_once,
    result_across_outages,
    wait_for_progress,
)
from tests.support.library import add_source
from tests.support.operations import start_refresh
from tests.support.slow_stage import held_env

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

# A small batch, held in flight by a slow normalize until the test has killed what it kills (held_env): the
# crash lands mid-batch however fast the machine is, and the rest of the batch then runs at full speed.
DOCS = 200
VISIBILITY_TIMEOUT = 5  # seconds: Redis re-delivers a dead Celery worker's tasks once they are this old


@pytest.fixture
def worker_env(sqlite_url: str, tmp_path: Path, processing_backend: str) -> dict[str, str]:
    env = {
        **os.environ,  # with the processing backend's settings (tests/conftest.py)
        "LOREGUARD_CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT),
        "LOREGUARD_DATABASE_URL": sqlite_url,
        "LOREGUARD_STATE_DIR": str(tmp_path / "state"),
        "LOREGUARD_CHUNK_SIZE": "25",
        "LOREGUARD_HEARTBEAT_SECONDS": "5",
        "LOREGUARD_PROCESSING_PROCESSES": "2",
        "LOREGUARD_FOLDER_ROOTS": json.dumps([str(tmp_path)]),  # the corpus folder is under tmp_path
    }
    return held_env(env, tmp_path / "hold")


def release(tmp_path: Path) -> None:
    """The batch's remaining documents run at full speed from now on."""
    (tmp_path / "hold").unlink()


@pytest.fixture
def corpus_source(sqlite_sessions: sessionmaker[Session], tmp_path: Path) -> int:
    folder = tmp_path / "docs"
    write_corpus(folder, DOCS, seed=11)
    return add_source(sqlite_sessions, folder, name="load")


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
    tmp_path: Path,
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
    release(tmp_path)
    if killed is celery_worker and processing_backend == "celery":
        # As a supervisor would restart it; once its unacknowledged tasks are older than the visibility
        # timeout, Redis hands them to the new worker when it starts. (RabbitMQ re-queues them when the
        # dead worker's connection closes: no wait.)
        await asyncio.sleep(VISIBILITY_TIMEOUT + 1)
    killed.start()
    result = await result_across_outages(handle)
    assert_stored_exactly_once(sqlite_sessions, batch_id, result, DOCS)


async def test_kill_9_of_the_temporal_server_mid_batch_loses_and_duplicates_nothing(
    fresh_dev_server: DevServer,
    sqlite_sessions: sessionmaker[Session],
    corpus_source: int,
    worker: WorkerProcess,
    celery_worker: WorkerProcess,
    processing_backend: str,
    tmp_path: Path,
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
    release(tmp_path)
    server.start()  # same SQLite file, same port
    result = await result_across_outages(handle)
    assert_stored_exactly_once(sqlite_sessions, batch_id, result, DOCS)
