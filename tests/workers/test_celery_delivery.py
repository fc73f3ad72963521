"""The hybrid's delivery guarantee on a real Redis broker: a stage task is acknowledged only after it ran, so when
its Celery worker is killed mid-task (kill -9) the broker still holds the task for another worker. With an
early acknowledgement the task would be gone, and its batch would wait for it until a timeout."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from data import repository
from orchestration.celery_app import PROCESS_TASK, make_celery_app
from tests.conftest import REDIS_URL
from tests.support.batches import purge_celery_queue
from tests.support.corpus import text_note
from tests.support.crash import CELERY_WORKER, WorkerProcess
from tests.support.documents import add_documents
from tests.support.library import add_source
from tests.support.slow_stage import held_env


def unacked_on(queue: str, *, forget: bool = False) -> int:
    """Tasks of `queue` delivered to a worker and not yet acknowledged (kombu's Redis transport keeps them in
    the `unacked` hash until the worker acknowledges, or re-delivers them after the visibility timeout);
    `forget` removes them, so no later worker re-delivers this test's task."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        ours = [tag for tag, v in client.hgetall("unacked").items() if json.loads(v)[2] == queue]
        if forget and ours:
            client.hdel("unacked", *ours)
    finally:
        client.close()
    return len(ours)


@pytest.mark.parametrize("processing_backend", ["celery"], indirect=True)
def test_a_task_whose_worker_is_killed_mid_run_stays_with_the_broker(
    processing_backend: str, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    source_id = add_source(sqlite_sessions, tmp_path, name="notes")
    with sqlite_sessions.begin() as session:
        batch_id = repository.create_batch(session, source_id=source_id).id
    rng = random.Random(3)
    add_documents(sqlite_sessions, batch_id, source_id, [text_note(rng, i).encode() for i in range(3)])
    env = {
        **os.environ,  # the test's own Celery queue (processing_backend)
        "LOREGUARD_DATABASE_URL": sqlite_url,
        "LOREGUARD_STATE_DIR": str(tmp_path / "state"),
        "LOREGUARD_CELERY_VISIBILITY_TIMEOUT_SECONDS": "3600",  # no re-delivery while the test looks
    }
    settings = Settings()
    worker = WorkerProcess(held_env(env, tmp_path / "hold", 30.0), tmp_path / "celery.log", CELERY_WORKER)
    worker.start()
    try:
        app = make_celery_app(settings)
        app.send_task(PROCESS_TASK, args=(batch_id, 0, 3), queue=settings.celery_queue)
        deadline = time.monotonic() + 120
        while not (tmp_path / "hold.seen").exists():  # the task runs: its first document is at normalize
            assert worker.proc is not None and worker.proc.poll() is None, worker.log.read_text()
            assert time.monotonic() < deadline, f"no worker ran the task:\n{worker.log.read_text()}"
            time.sleep(0.1)
        worker.kill9()  # mid-task: the first document is held at normalize for 30 s

        assert unacked_on(settings.celery_queue) == 1, (
            "the killed worker's task is gone from the broker: it was acknowledged when received, not after it "
            "ran (task_acks_late, orchestration/celery_app.py), so no other worker will ever run it"
        )
    finally:
        worker.stop()
        unacked_on(settings.celery_queue, forget=True)
        purge_celery_queue(settings)
