"""Celery-alone side of bench/engines.py: a worker serving one task per chunk (the product's process then evaluate
steps) and a chord body that ends the batch, and the chord the driver sends.

    python bench/engines_celery.py      # the worker (prefork, one process per core), settings from LOREGUARD_*
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from celery import Celery, chord  # noqa: E402
from celery.result import AsyncResult  # noqa: E402
from celery.signals import worker_process_init  # noqa: E402

from core.settings import Settings  # noqa: E402
from orchestration.celery_app import make_celery_app  # noqa: E402
from orchestration.policies import CELERY_TASK_ATTEMPTS  # noqa: E402
from orchestration.types import ChunkInput, FinishBatchInput  # noqa: E402
from workers.celery_tasks import backoff_seconds  # noqa: E402
from workers.stages.pipeline import warm_up  # noqa: E402
from workers.steps import BatchSteps, build_steps  # noqa: E402

_steps: BatchSteps | None = None

CHUNK_TASK = "bench.run_chunk"
FINISH_TASK = "bench.finish_batch"


def send_chord(app: Celery, queue: str, batch_id: int, total: int, chunk_size: int) -> AsyncResult:
    """A chord over the batch's chunks; its result is the number of documents stored."""
    header = [
        app.signature(CHUNK_TASK, args=(batch_id, s, min(s + chunk_size, total)), queue=queue)
        for s in range(0, total, chunk_size)
    ]
    body = app.signature(FINISH_TASK, args=(batch_id,), immutable=True, queue=queue)
    result: AsyncResult = chord(header, app=app)(body)
    return result


def main() -> None:
    settings = Settings()
    app = make_celery_app(settings)

    @app.task(name=CHUNK_TASK, shared=False, bind=True, max_retries=CELERY_TASK_ATTEMPTS - 1)
    def run_chunk(task: Any, batch_id: int, start_seq: int, end_seq: int) -> int:
        global _steps
        if _steps is None:
            _steps = build_steps(settings)
        chunk = ChunkInput(batch_id=batch_id, start_seq=start_seq, end_seq=end_seq)
        try:
            _steps.process_chunk(chunk)
            return _steps.evaluate_chunk(chunk).done
        except Exception as exc:  # the study's retries: 3 attempts, exponential backoff
            raise task.retry(exc=exc, countdown=backoff_seconds(task.request.retries or 0)) from exc

    @app.task(name=FINISH_TASK, shared=False)
    def finish_batch(batch_id: int) -> int:
        return (
            build_steps(settings).finish_batch(FinishBatchInput(batch_id=batch_id, status="completed")).stored
        )

    def warm(**_: Any) -> None:
        warm_up()

    worker_process_init.connect(warm, weak=False)
    app.Worker(
        hostname=f"bench-{os.getpid()}@localhost",
        queues=[settings.celery_queue],
        concurrency=os.cpu_count() or 1,
        pool="prefork",
        loglevel="INFO",
        optimization="fair",
        without_mingle=True,
        without_gossip=True,
    ).start()


if __name__ == "__main__":
    main()
