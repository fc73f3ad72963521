"""Pipeline throughput: the full stack against the same steps with no orchestration, on this machine.

    .venv/bin/python bench/pipeline.py --docs 10000

(a) full stack: Temporal dev server (SQLite, WAL) + one worker process (all queues, CPU pool over all cores),
    one real batch over a folder of generated documents, timed from the refresh to the batch's result;
(b) no orchestration: the same BatchSteps (ingest, then per chunk process + evaluate/store) in a process pool
    over all cores, writing to the same kind of database.
Prints docs/s of each, `ratio: X.XX` (a/b), and the peak RSS of the worker and of the Temporal server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402
from temporalio.client import Client, WorkflowHandle  # noqa: E402

from cli.devserver import DevServer, free_port  # noqa: E402
from cli.processes import stop_process  # noqa: E402
from core.roles import Role  # noqa: E402
from core.settings import Settings  # noqa: E402
from data import repository  # noqa: E402
from data.corpus import write_corpus  # noqa: E402
from data.db import make_engine, make_session_factory  # noqa: E402
from data.migrate import upgrade  # noqa: E402
from data.models import Artifact, Batch  # noqa: E402
from operations import Actor, Context  # noqa: E402
from operations import batches as batch_ops  # noqa: E402
from orchestration.client import register_search_attributes  # noqa: E402
from orchestration.types import BatchResult, ChunkInput, FinishBatchInput, IngestInput  # noqa: E402
from workers.stages.pipeline import warm_up  # noqa: E402
from workers.steps import BatchSteps, build_steps  # noqa: E402

WARMUP_DOCS = 60

BENCH_ACTOR = Actor("bench", frozenset({Role.OPERATOR}))


async def start_refresh(
    client: Client, sessions: sessionmaker[Session], *, source_id: int
) -> tuple[int, WorkflowHandle[Any, BatchResult]]:
    """Start a batch as `loreguard refresh` does (operations.batches.refresh_source), on a thread so this
    event loop keeps running; returns (batch id, a handle on its workflow)."""
    address = client.service_client.config.target_host
    settings = Settings(temporal_address=address, temporal_namespace=client.namespace)
    ctx = Context.for_settings(settings, sessions)
    try:
        started = await asyncio.to_thread(batch_ops.refresh_source, BENCH_ACTOR, ctx, source_id)
    finally:
        ctx.close()
    return started.batch_id, client.get_workflow_handle(started.workflow_id, result_type=BatchResult)


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its own threads; /proc/PID/stat fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children of any of its threads), from /proc/*/stat parent IDs."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class PeakRss:
    """Samples the resident memory of a process (and, separately, its whole tree) until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.peak_tree_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            own = rss_kb(self.pid)
            self.peak_kb = max(self.peak_kb, own)
            self.peak_tree_kb = max(self.peak_tree_kb, own + sum(rss_kb(p) for p in descendants(self.pid)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def fresh_db(folder: Path) -> str:
    url = f"sqlite:///{folder / 'app.db'}"
    upgrade(url)
    return url


def add_source(url: str, name: str, folder: Path) -> int:
    sessions = make_session_factory(make_engine(url))
    with sessions.begin() as session:
        return repository.create_source(session, name=name, kind="folder", location=str(folder)).id


def phases(sessions: sessionmaker[Session], batch_id: int) -> dict[str, float]:
    """Where a batch's time went: from its start to the end of ingest, and from then to its last stored
    document (the stages), from the times the database recorded."""
    with sessions() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.started_at is not None and batch.ingested_at is not None
        last = session.scalar(select(func.max(Artifact.stored_at)).where(Artifact.batch_id == batch_id))
        ingest = (batch.ingested_at - batch.started_at).total_seconds()
        stages = (last - batch.ingested_at).total_seconds() if last is not None else 0.0
    return {"ingest_seconds": ingest, "stages_seconds": stages}


# --- (a) full stack ------------------------------------------------------------------------------------


async def full_stack(docs: Path, warmup: Path, work: Path, env_overrides: dict[str, str]) -> dict[str, float]:
    work.mkdir()
    url = fresh_db(work)
    server = DevServer(work / "temporal.db", port=free_port(), ui_port=None)
    server.start()
    env = {
        **os.environ,
        **env_overrides,
        "LOREGUARD_DATABASE_URL": url,
        "LOREGUARD_TEMPORAL_ADDRESS": server.address,
        "LOREGUARD_STATE_DIR": str(work / "state"),
    }
    log = (work / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        client = await Client.connect(server.address)
        await register_search_attributes(client, "default")
        sessions = make_session_factory(make_engine(url))
        # Warm-up batch: starts the CPU pool and loads the parsers, as a running deployment would have.
        _, handle = await start_refresh(client, sessions, source_id=add_source(url, "warmup", warmup))
        await handle.result()
        worker_rss, server_rss = PeakRss(worker.pid), PeakRss(server.pid or 0)
        source_id = add_source(url, "bench", docs)
        pool = descendants(worker.pid)
        cpu0 = (cpu_seconds(worker.pid), sum(map(cpu_seconds, pool)), cpu_seconds(server.pid or 0))
        started = time.perf_counter()
        batch_id, handle = await start_refresh(client, sessions, source_id=source_id)
        result = await handle.result()
        elapsed = time.perf_counter() - started
        cpu1 = (cpu_seconds(worker.pid), sum(map(cpu_seconds, pool)), cpu_seconds(server.pid or 0))
        worker_rss.stop()
        server_rss.stop()
        return {
            "seconds": elapsed,
            "stored": result.stored,
            "failed": result.failed,
            "worker_rss_mb": worker_rss.peak_kb / 1024,
            "worker_tree_rss_mb": worker_rss.peak_tree_kb / 1024,
            "server_rss_mb": server_rss.peak_kb / 1024,
            "cpu_worker": cpu1[0] - cpu0[0],
            "cpu_pool": cpu1[1] - cpu0[1],
            "cpu_server": cpu1[2] - cpu0[2],
            **phases(sessions, batch_id),
        }
    finally:
        stop_process(worker, timeout=10)
        server.stop()
        log.close()


# --- (b) no orchestration ------------------------------------------------------------------------------

_steps: BatchSteps | None = None
_timings: dict[str, float] = {}


def _init_process(url: str) -> None:
    global _steps
    warm_up()
    _steps = build_steps(Settings(database_url=url))


def _run_chunk(chunk: ChunkInput) -> int:
    assert _steps is not None
    _steps.process_chunk(chunk)
    return _steps.evaluate_chunk(chunk).done


def _run_batch(pool: ProcessPoolExecutor, url: str, folder: Path, name: str, chunk_size: int) -> int:
    source_id = add_source(url, name, folder)
    sessions = make_session_factory(make_engine(url))
    with sessions.begin() as session:
        batch_id = repository.create_batch(session, source_id=source_id).id
    _init_process(url)
    assert _steps is not None
    started = time.perf_counter()
    total = _steps.ingest_source(IngestInput(batch_id=batch_id)).total
    _timings["ingest_seconds"] = time.perf_counter() - started
    chunks = [
        ChunkInput(batch_id=batch_id, start_seq=s, end_seq=min(s + chunk_size, total))
        for s in range(0, total, chunk_size)
    ]
    list(pool.map(_run_chunk, chunks))
    return _steps.finish_batch(FinishBatchInput(batch_id=batch_id, status="completed")).stored


def no_orchestration(docs: Path, warmup: Path, work: Path, chunk_size: int) -> dict[str, float]:
    work.mkdir()
    url = fresh_db(work)
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        os.cpu_count() or 1, mp_context=ctx, initializer=_init_process, initargs=(url,)
    ) as pool:
        _run_batch(pool, url, warmup, "warmup", chunk_size)
        started = time.perf_counter()
        stored = _run_batch(pool, url, docs, "bench", chunk_size)
        return {"seconds": time.perf_counter() - started, "stored": stored, **_timings}


def print_full_stack(a: dict[str, float]) -> None:
    print(
        f"peak RSS worker: {a['worker_rss_mb']:.0f} MB (with its CPU pool: {a['worker_tree_rss_mb']:.0f} MB)"
    )
    print(f"peak RSS temporal server: {a['server_rss_mb']:.0f} MB")
    print(
        f"(a) phases: ingest {a['ingest_seconds']:.1f} s, then the stages to the last stored document "
        f"{a['stages_seconds']:.1f} s"
    )
    print(
        f"(a) CPU seconds: worker {a['cpu_worker']:.1f} (ingest, Temporal client), its CPU pool "
        f"{a['cpu_pool']:.1f} (process stages, evaluate and store), Temporal server {a['cpu_server']:.1f}; "
        f"{(os.cpu_count() or 1) * a['seconds']:.1f} core-seconds elapsed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=10_000, help="generated documents (default 10,000)")
    parser.add_argument("--chunk-size", type=int, default=Settings().chunk_size)
    parser.add_argument(
        "--full-stack-only",
        action="store_true",
        help="run (a) alone, e.g. to read the worker's memory at 100,000 documents; no ratio is printed",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="loreguard-bench-") as tmp:
        work = Path(tmp)
        # The generated corpus lives in a temporary folder: a folder root for this run (workers inherit it).
        os.environ["LOREGUARD_FOLDER_ROOTS"] = json.dumps([str(work.resolve())])
        t = time.perf_counter()
        write_corpus(work / "docs", args.docs, seed=1)
        write_corpus(work / "warmup", WARMUP_DOCS, seed=2)
        print(f"corpus: {args.docs} documents written in {time.perf_counter() - t:.1f} s", flush=True)
        print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}", flush=True)
        settings = Settings()  # both sides judge with the configured evaluator (default: semantic)
        print(f"evaluator: {settings.evaluator}", flush=True)

        print("(a) full stack: dev server + worker, one batch ...", flush=True)
        env = {"LOREGUARD_CHUNK_SIZE": str(args.chunk_size)}
        a = asyncio.run(full_stack(work / "docs", work / "warmup", work / "a", env))
        a_rate = a["stored"] / a["seconds"]
        print(
            f"(a) full stack: {a['stored']:.0f} stored in {a['seconds']:.1f} s = {a_rate:.1f} docs/s",
            flush=True,
        )

        if args.full_stack_only:
            print_full_stack(a)
            if a["stored"] != args.docs:
                print(f"error: expected {args.docs} stored documents", file=sys.stderr)
                sys.exit(1)
            return
        print("(b) no orchestration: same steps in a process pool ...", flush=True)
        b = no_orchestration(work / "docs", work / "warmup", work / "b", args.chunk_size)
        b_rate = b["stored"] / b["seconds"]
        print(f"(b) no orchestration: {b['stored']:.0f} stored in {b['seconds']:.1f} s = {b_rate:.1f} docs/s")
        print(
            f"(b) phases: ingest {b['ingest_seconds']:.1f} s, then the stages {b['seconds'] - b['ingest_seconds']:.1f} s"
        )

        # Three decimals: a ratio just under a goal must not print as the goal.
        print(f"ratio: {a_rate / b_rate:.3f} (load average at the end {os.getloadavg()[0]:.2f})")
        print_full_stack(a)
        if a["stored"] != args.docs or b["stored"] != args.docs:
            print(f"error: expected {args.docs} stored documents on both sides", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
