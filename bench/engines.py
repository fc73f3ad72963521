"""The engines side by side, on one generated corpus and the same stage functions and store writes:

    make bench-engines BENCH_ARGS="--docs 10000"
    .venv/bin/python bench/engines.py --docs 10000 --prefect-python .venv-prefect/bin/python

(a) LoreGuard on Temporal: dev server (SQLite, WAL) + one worker (all queues, CPU pool over every core);
(b) the hybrid: the same, with LOREGUARD_PROCESSING_BACKEND=celery and a Celery worker (prefork, every core)
    on the local Redis;
(c) Celery alone: a chord over the chunks (process -> evaluate per chunk, then finish), same worker, same Redis;
(d) Prefect 3: a flow over chunk tasks, process-pool task runner, local ephemeral server (its own virtualenv);
(e) no orchestration: the steps in a process pool (bench/pipeline.py's baseline).

Each engine runs a warm-up batch, then the measured batch (docs/s, ratio to (e), peak RSS of every process), then
a second batch during which one worker is killed with SIGKILL at mid-batch; a worker that a supervisor would
restart (Temporal's, Celery's) is started again at once. Prints the table at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402
from temporalio.client import Client  # noqa: E402

from bench.engines_celery import send_chord  # noqa: E402
from bench.pipeline import (  # noqa: E402
    WARMUP_DOCS,
    PeakRss,
    _init_process,
    _run_batch,
    _run_chunk,
    add_source,
    descendants,
    fresh_db,
    start_refresh,
)
from cli.devserver import DevServer, free_port  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.vocabulary import ArtifactStatus  # noqa: E402
from data import repository  # noqa: E402
from data.corpus import write_corpus  # noqa: E402
from data.db import make_engine, make_session_factory  # noqa: E402
from data.models import Artifact, Evaluation  # noqa: E402
from orchestration.celery_app import delete_queue, make_celery_app  # noqa: E402
from orchestration.client import register_search_attributes  # noqa: E402
from orchestration.types import ChunkInput, IngestInput  # noqa: E402
from workers.steps import build_steps  # noqa: E402

VISIBILITY_TIMEOUT = 10  # seconds (Redis): a dead Celery worker's tasks are re-delivered once this old
RUN_TIMEOUT = 900.0  # seconds a crashed run may take to finish on its own before it counts as stuck
CORES = os.cpu_count() or 1


@dataclass
class Crash:
    killed: str
    lost: int = 0
    duplicated: int = 0
    finished: bool = False
    seconds: float = 0.0
    note: str = ""


@dataclass
class Engine:
    name: str
    stored: int = 0
    seconds: float = 0.0
    rss_mb: dict[str, float] = field(default_factory=dict)
    crash: Crash | None = None

    @property
    def rate(self) -> float:
        return self.stored / self.seconds if self.seconds else 0.0


# --- shared helpers -------------------------------------------------------------------------------------


def tally(url: str, batch_id: int, expected: int) -> tuple[int, int, int]:
    """(stored, lost, duplicated): lost = expected documents not stored; duplicated = extra rows of a
    sequence number plus extra evaluations of a document."""
    with make_session_factory(make_engine(url))() as session:
        rows, seqs = session.execute(
            select(func.count(), func.count(func.distinct(Artifact.seq))).where(Artifact.batch_id == batch_id)
        ).one()
        stored = session.scalar(
            select(func.count()).where(
                Artifact.batch_id == batch_id, Artifact.status == ArtifactStatus.STORED
            )
        )
        evals, evaluated = session.execute(
            select(func.count(), func.count(func.distinct(Evaluation.artifact_id)))
            .join(Artifact)
            .where(Artifact.batch_id == batch_id)
        ).one()
    stored = int(stored or 0)
    return stored, expected - stored, (rows - seqs) + (evals - evaluated)


def stored_count(url: str, batch_id: int) -> int:
    with make_session_factory(make_engine(url))() as session:
        return repository.artifact_status_counts(session, batch_id=batch_id).get(ArtifactStatus.STORED, 0)


def latest_batch(url: str) -> int:
    with make_session_factory(make_engine(url))() as session:
        return int(session.scalar(select(func.max(Artifact.batch_id))) or 0)


def when_half_stored(
    url: str, batch: Callable[[], int], total: int, action: Callable[[], None]
) -> threading.Thread:
    """Run `action` once the batch has stored half its documents (polled from the store)."""

    def watch() -> None:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            batch_id = batch()
            if batch_id and stored_count(url, batch_id) >= total // 2:
                action()
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


class Proc:
    """A worker in its own process group (kill -9 takes its pool down with it), restartable."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.command, self.env, self.log = name, command, env, log
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            if self.popen is None or self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; see {self.log}")
            time.sleep(0.2)

    def kill9(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()


def redis_pid() -> int:
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "redis-server":
                return int(comm.parent.name)
        except OSError:
            continue
    return 0


def peak_mb(samplers: dict[str, tuple[PeakRss, bool]]) -> dict[str, float]:
    """Stop the samplers; each role's peak (with its process tree when asked) in MB."""
    out = {}
    for role, (sampler, tree) in samplers.items():
        sampler.stop()
        out[role] = (sampler.peak_tree_kb if tree else sampler.peak_kb) / 1024
    return out


# --- (a) and (b): LoreGuard on Temporal, and the hybrid -----------------------------------------------------


async def loreguard(backend: str, docs: Path, warmup: Path, work: Path, total: int, crash: bool) -> Engine:
    engine = Engine("LoreGuard on Temporal" if backend == "temporal" else "hybrid: Temporal + Celery")
    work.mkdir()
    url = fresh_db(work)
    server = DevServer(work / "temporal.db", port=free_port(), ui_port=None)
    server.start()
    env = {
        **os.environ,
        "LOREGUARD_DATABASE_URL": url,
        "LOREGUARD_TEMPORAL_ADDRESS": server.address,
        "LOREGUARD_STATE_DIR": str(work / "state"),
        "LOREGUARD_PROCESSING_BACKEND": backend,
        "LOREGUARD_CELERY_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        "LOREGUARD_CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT),
        "LOREGUARD_HEALTH_PORT": "-1",
        "LOREGUARD_METRICS_PORT": "0",
    }
    worker = Proc("temporal worker", [sys.executable, "-m", "workers"], env, work / "worker.log").start()
    celery = None
    if backend == "celery":
        command = [sys.executable, "-m", "cli.main", "celery-worker"]
        celery = Proc("celery worker", command, env, work / "celery.log").start()
        celery.wait_for("celery worker ready")
    try:
        client = await Client.connect(server.address)
        await register_search_attributes(client, "default")
        sessions = make_session_factory(make_engine(url))
        _, handle = await start_refresh(client, sessions, source_id=add_source(url, "warmup", warmup))
        await handle.result()
        samplers = {
            "temporal worker": (PeakRss(worker.pid), True),
            "temporal server": (PeakRss(server.pid or 0), False),
        }
        if celery is not None:
            samplers["celery worker"] = (PeakRss(celery.pid), True)
            samplers["redis (shared)"] = (PeakRss(redis_pid()), False)
        started = time.perf_counter()
        _, handle = await start_refresh(client, sessions, source_id=add_source(url, "bench", docs))
        result = await handle.result()
        engine.seconds, engine.stored = time.perf_counter() - started, result.stored
        engine.rss_mb = peak_mb(samplers)
        if crash:
            victim = celery if celery is not None else worker
            engine.crash = Crash(killed=f"the {victim.name} (its whole process group), restarted at once")
            batch_id, handle = await start_refresh(client, sessions, source_id=add_source(url, "crash", docs))

            def kill_and_restart() -> None:
                victim.kill9()
                victim.start()

            when_half_stored(url, lambda: batch_id, total, kill_and_restart)
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(handle.result(), RUN_TIMEOUT)
                engine.crash.finished = True
            except (TimeoutError, Exception) as exc:
                engine.crash.note = f"{type(exc).__name__}"
            engine.crash.seconds = time.perf_counter() - t0
            _, engine.crash.lost, engine.crash.duplicated = tally(url, batch_id, total)
        return engine
    finally:
        for proc in (celery, worker):
            if proc is not None:
                proc.stop()
        server.stop()
        if celery is not None:
            queue = env["LOREGUARD_CELERY_QUEUE"]
            delete_queue(make_celery_app(Settings(celery_queue=queue)), queue)


# --- (c) Celery alone: a chord over the chunks ---------------------------------------------------------------


def celery_alone(docs: Path, warmup: Path, work: Path, total: int, chunk_size: int, crash: bool) -> Engine:
    engine = Engine("Celery alone (chord)")
    work.mkdir()
    url = fresh_db(work)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "LOREGUARD_DATABASE_URL": url,
        "LOREGUARD_STATE_DIR": str(work / "state"),
        "LOREGUARD_CELERY_QUEUE": queue,
        "LOREGUARD_CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT),
    }
    settings = Settings(
        database_url=url, celery_queue=queue, celery_visibility_timeout_seconds=VISIBILITY_TIMEOUT
    )
    app = make_celery_app(settings)
    steps = build_steps(settings)
    worker = Proc(
        "celery worker", [sys.executable, "bench/engines_celery.py"], env, work / "celery.log"
    ).start()
    worker.wait_for(" ready.")

    def run(folder: Path, name: str, timeout: float) -> tuple[int, int]:
        source_id = add_source(url, name, folder)
        with steps.sessions.begin() as session:
            batch_id = repository.create_batch(session, source_id=source_id).id
        holder["batch"] = batch_id
        count = steps.ingest_source(IngestInput(batch_id=batch_id)).total
        return batch_id, int(send_chord(app, queue, batch_id, count, chunk_size).get(timeout=timeout))

    holder = {"batch": 0}
    try:
        run(warmup, "warmup", 300)
        samplers = {
            "celery worker": (PeakRss(worker.pid), True),
            "redis (shared)": (PeakRss(redis_pid()), False),
        }
        started = time.perf_counter()
        _, engine.stored = run(docs, "bench", RUN_TIMEOUT)
        engine.seconds = time.perf_counter() - started
        engine.rss_mb = peak_mb(samplers)  # the driver only ingests and waits: not counted
        if crash:
            engine.crash = Crash(killed="the celery worker (its whole process group), restarted at once")
            holder["batch"] = 0

            def kill_and_restart() -> None:
                worker.kill9()
                worker.start()

            when_half_stored(url, lambda: holder["batch"], total, kill_and_restart)
            t0 = time.perf_counter()
            try:
                run(docs, "crash", RUN_TIMEOUT)
                engine.crash.finished = True
            except Exception as exc:
                engine.crash.note = type(exc).__name__
            engine.crash.seconds = time.perf_counter() - t0
            _, engine.crash.lost, engine.crash.duplicated = tally(url, holder["batch"], total)
        return engine
    finally:
        worker.stop()
        delete_queue(app, queue)


# --- (d) Prefect 3 -----------------------------------------------------------------------------------------


def prefect(
    python: str, docs: Path, warmup: Path, work: Path, total: int, chunk_size: int, crash: bool
) -> Engine:
    engine = Engine("Prefect 3 (process pool)")
    work.mkdir()
    url = fresh_db(work)
    env = {
        **os.environ,
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    command = [
        python, "bench/engines_prefect.py", "--db", url, "--folder", str(docs), "--warmup", str(warmup),
        "--chunk-size", str(chunk_size), "--workers", str(CORES),
    ]  # fmt: skip

    def run(log: Path, kill: bool) -> dict[str, float]:
        proc = Proc("prefect flow", command, env, log).start()
        sampler = PeakRss(proc.pid)
        lines: list[dict[str, float]] = []
        if kill:

            def kill_one_pool_process() -> None:  # the runner's pool is spawned: spawn_main in its cmdline
                pool = [p for p in descendants(proc.pid) if b"spawn_main" in _cmdline(p)]
                if pool:
                    os.kill(pool[0], signal.SIGKILL)

            bench_batch = lambda: int(lines[-1]["batch_id"]) if len(lines) >= 2 else 0  # noqa: E731
            when_half_stored(url, bench_batch, total, kill_one_pool_process)
        assert proc.popen is not None
        deadline = time.monotonic() + RUN_TIMEOUT
        while proc.popen.poll() is None and time.monotonic() < deadline:
            lines[:] = _json_lines(log)
            time.sleep(0.2)
        proc.stop()
        sampler.stop()
        lines[:] = _json_lines(log)
        return {
            **(lines[-1] if lines else {}),
            "rss_mb": sampler.peak_tree_kb / 1024,
            "status": proc.popen.returncode,
        }

    result = run(work / "prefect.log", kill=False)
    if "seconds" not in result or result.get("batch_id") != latest_batch(url):
        raise RuntimeError(f"the Prefect run failed; see {work / 'prefect.log'}")
    engine.seconds, engine.stored = result["seconds"], int(result["stored"])
    engine.rss_mb = {"flow process + pool + ephemeral server": result["rss_mb"]}
    if crash:
        engine.crash = Crash(killed="one process of the flow's process pool")
        t0 = time.perf_counter()
        outcome = run(work / "prefect-crash.log", kill=True)
        engine.crash.seconds = time.perf_counter() - t0
        engine.crash.finished = "seconds" in outcome and outcome.get("status") == 0
        if not engine.crash.finished:
            engine.crash.note = "flow run failed: a person reruns it"
        _, engine.crash.lost, engine.crash.duplicated = tally(url, latest_batch(url), total)
    return engine


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _json_lines(log: Path) -> list[dict[str, float]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


# --- (e) no orchestration ------------------------------------------------------------------------------------


def no_orchestration(
    docs: Path, warmup: Path, work: Path, total: int, chunk_size: int, crash: bool
) -> Engine:
    engine = Engine("no orchestration (process pool)")
    work.mkdir()
    url = fresh_db(work)
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(CORES, mp_context=ctx, initializer=_init_process, initargs=(url,)) as pool:
        _run_batch(pool, url, warmup, "warmup", chunk_size)
        sampler = PeakRss(os.getpid())
        started = time.perf_counter()
        engine.stored = _run_batch(pool, url, docs, "bench", chunk_size)
        engine.seconds = time.perf_counter() - started
        sampler.stop()
        engine.rss_mb = {"driver + pool": sampler.peak_tree_kb / 1024}
    if crash:
        engine.crash = Crash(killed="one process of the pool")
        ctx_pool = ProcessPoolExecutor(CORES, mp_context=ctx, initializer=_init_process, initargs=(url,))
        source_id = add_source(url, "crash", docs)
        steps = build_steps(Settings(database_url=url))
        with steps.sessions.begin() as session:
            batch_id = repository.create_batch(session, source_id=source_id).id
        count = steps.ingest_source(IngestInput(batch_id=batch_id)).total
        chunks = [
            ChunkInput(batch_id=batch_id, start_seq=s, end_seq=min(s + chunk_size, count))
            for s in range(0, count, chunk_size)
        ]

        def kill_one() -> None:
            workers = list(ctx_pool._processes or {})  # the pool's own worker pids
            if workers:
                os.kill(workers[0], signal.SIGKILL)

        when_half_stored(url, lambda: batch_id, total, kill_one)
        t0 = time.perf_counter()
        try:
            list(ctx_pool.map(_run_chunk, chunks))
            engine.crash.finished = True
        except BrokenProcessPool:
            engine.crash.note = "BrokenProcessPool: the run aborts; a person reruns it"
        finally:
            ctx_pool.shutdown(wait=False, cancel_futures=True)
        engine.crash.seconds = time.perf_counter() - t0
        _, engine.crash.lost, engine.crash.duplicated = tally(url, batch_id, total)
    return engine


# --- the table ----------------------------------------------------------------------------------------------


def table(engines: list[Engine], limit: float, total: int) -> str:
    head = (
        "| engine | docs/s | ratio to (e) | peak RSS (MB) | kill -9 of | lost | duplicated | finished alone |\n"
        "|---|---:|---:|---|---|---:|---:|---|"
    )
    rows = [head]
    for letter, e in zip("abcde", engines, strict=False):
        rss = ", ".join(f"{role} {mb:.0f}" for role, mb in e.rss_mb.items())
        rss += f" (total {sum(e.rss_mb.values()):.0f})" if len(e.rss_mb) > 1 else ""
        c = e.crash
        crash = (
            f"| {c.killed} | {c.lost} | {c.duplicated} | "
            f"{'yes' if c.finished else 'no'} ({c.seconds:.0f} s{'; ' + c.note if c.note else ''}) |"
            if c
            else "| - | - | - | - |"
        )
        rows.append(f"| ({letter}) {e.name} | {e.rate:.0f} | {e.rate / limit:.2f} | {rss} {crash}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=10_000, help="generated documents (default 10,000)")
    parser.add_argument("--chunk-size", type=int, default=Settings().chunk_size)
    parser.add_argument(
        "--prefect-python", default=str(ROOT / ".venv-prefect" / "bin" / "python"),
        help="python of the virtualenv with the `prefect` extra (`make bench-engines` builds .venv-prefect)",
    )  # fmt: skip
    parser.add_argument("--no-crash", action="store_true", help="skip the kill -9 runs")
    args = parser.parse_args()
    if not Path(args.prefect_python).exists():
        sys.exit(f"{args.prefect_python} not found: run `make bench-engines` (it builds .venv-prefect)")
    crash = not args.no_crash

    with tempfile.TemporaryDirectory(prefix="loreguard-engines-") as tmp:
        work = Path(tmp)
        os.environ["LOREGUARD_FOLDER_ROOTS"] = json.dumps([str(work.resolve())])
        os.environ["LOREGUARD_CHUNK_SIZE"] = str(args.chunk_size)
        write_corpus(work / "docs", args.docs, seed=1)
        write_corpus(work / "warmup", WARMUP_DOCS, seed=2)
        print(f"corpus: {args.docs} documents; cores: {CORES}; chunk size {args.chunk_size}", flush=True)
        engines: list[Engine] = []
        steps: list[tuple[str, Callable[[], Engine]]] = [
            ("a", lambda: asyncio.run(loreguard("temporal", work / "docs", work / "warmup", work / "a", args.docs, crash))),
            ("b", lambda: asyncio.run(loreguard("celery", work / "docs", work / "warmup", work / "b", args.docs, crash))),
            ("c", lambda: celery_alone(work / "docs", work / "warmup", work / "c", args.docs, args.chunk_size, crash)),
            ("d", lambda: prefect(args.prefect_python, work / "docs", work / "warmup", work / "d", args.docs, args.chunk_size, crash)),
            ("e", lambda: no_orchestration(work / "docs", work / "warmup", work / "e", args.docs, args.chunk_size, crash)),
        ]  # fmt: skip
        for letter, run in steps:
            engine = run()
            engines.append(engine)
            c = engine.crash
            print(
                f"({letter}) {engine.name}: {engine.stored} stored in {engine.seconds:.1f} s = {engine.rate:.1f} docs/s"
                + (
                    f"; kill -9: lost {c.lost}, duplicated {c.duplicated}, finished {c.finished}" if c else ""
                ),
                flush=True,
            )
        print()
        print(table(engines, engines[-1].rate, args.docs))
        bad = [e.name for e in engines if e.stored != args.docs]
        if bad:
            print(
                f"error: expected {args.docs} stored documents; not so for {', '.join(bad)}", file=sys.stderr
            )
            sys.exit(1)


if __name__ == "__main__":
    main()
