"""Prefect 3 side of bench/engines.py, run by the Prefect virtualenv's python (`make bench-engines` builds it).

A flow over chunk tasks with Prefect's process-pool task runner and its local ephemeral server: ingest, then one
task per chunk (process + evaluate/store, the same BatchSteps as every other engine), then finish. Prints one JSON
line per batch: {"batch_id": ...} when it starts, then {"batch_id", "seconds", "stored"} when it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefect import flow, task  # noqa: E402
from prefect.task_runners import ProcessPoolTaskRunner  # noqa: E402

from bench.pipeline import _init_process, _run_chunk  # noqa: E402
from core.settings import Settings  # noqa: E402
from data import repository  # noqa: E402
from data.db import make_engine, make_session_factory  # noqa: E402
from orchestration.policies import CELERY_TASK_ATTEMPTS  # noqa: E402
from orchestration.types import ChunkInput, FinishBatchInput, IngestInput  # noqa: E402
from workers.steps import build_steps  # noqa: E402


# The study's retries (3 attempts); the steps are idempotent, so a retried chunk redoes only what is left.
@task(retries=CELERY_TASK_ATTEMPTS - 1, retry_delay_seconds=[1, 2])
def run_chunk(batch_id: int, start_seq: int, end_seq: int) -> int:
    # bench.pipeline's chunk function and initializer (as in (e)): found by module name in the pool process,
    # whose steps the initializer built, however Prefect pickles this task.
    return _run_chunk(ChunkInput(batch_id=batch_id, start_seq=start_seq, end_seq=end_seq))


@flow(name="loreguard-batch", persist_result=False)
def batch_flow(batch_id: int, total: int, chunk_size: int) -> int:
    futures = [
        run_chunk.submit(batch_id, start, min(start + chunk_size, total))
        for start in range(0, total, chunk_size)
    ]
    return sum(f.result() for f in futures)


def run_batch(url: str, folder: Path, name: str, chunk_size: int, workers: int) -> None:
    name = f"{name}-{os.getpid()}"  # source names are unique; a second run uses the same database
    sessions = make_session_factory(make_engine(url))
    with sessions.begin() as session:
        source_id = repository.create_source(session, name=name, kind="folder", location=str(folder)).id
        batch_id = repository.create_batch(session, source_id=source_id).id
    print(json.dumps({"batch_id": batch_id}), flush=True)
    started = time.perf_counter()
    steps = build_steps(Settings(database_url=url))  # not the pool's global: the flow's tasks are pickled
    total = steps.ingest_source(IngestInput(batch_id=batch_id)).total
    runner = ProcessPoolTaskRunner(max_workers=workers, initializer=_init_process, initargs=(url,))
    batch_flow.with_options(task_runner=runner)(batch_id, total, chunk_size)
    stored = steps.finish_batch(FinishBatchInput(batch_id=batch_id, status="completed")).stored
    seconds = time.perf_counter() - started
    print(json.dumps({"batch_id": batch_id, "seconds": seconds, "stored": stored}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--warmup", type=Path, required=True)
    parser.add_argument("--chunk-size", type=int, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    # Prefect's local ephemeral server, started once and named to the pool's processes: left alone, every
    # spawned pool process starts an ephemeral server of its own (about 20 s each, and a second SQLite database).
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    run_batch(args.db, args.warmup, "warmup", args.chunk_size, args.workers)
    run_batch(args.db, args.folder, "bench", args.chunk_size, args.workers)


if __name__ == "__main__":
    # Run the importable copy: the pool's processes find the task and the initializer by module name.
    from bench.engines_prefect import main as importable_main

    importable_main()
