"""The CPU pool under its memory bound: a document that needs more memory fails alone with that reason, and a
pool process that dies is replaced, failing only the document that killed it."""

from __future__ import annotations

import multiprocessing
import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from data import repository
from data.models import Artifact
from orchestration.types import ChunkFailureInput, ChunkInput, ChunkResult
from tests.support import crashing_stage
from tests.support.address_space import address_space_mb
from tests.support.corpus import text_note
from tests.support.documents import add_documents
from workers.pool import DIED, CpuPool, make_cpu_pool
from workers.steps import build_steps
from workers.steps_base import no_heartbeat

HEADROOM_MB = 200
# Plain text whose fingerprint needs about 64 bytes per word: 2 million words want far more than the headroom.
HUNGRY = b"a b " * 1_000_000


def new_batch(sessions: sessionmaker[Session], folder: Path) -> tuple[int, int]:
    with sessions.begin() as session:
        source_id = repository.create_source(session, name="notes", kind="folder", location=str(folder)).id
        return source_id, repository.create_batch(session, source_id=source_id).id


def outcomes(sessions: sessionmaker[Session], batch_id: int) -> list[tuple[int, str, str | None, str | None]]:
    with sessions() as session:
        rows = session.execute(
            select(Artifact.seq, Artifact.status, Artifact.failed_stage, Artifact.error)
            .where(Artifact.batch_id == batch_id)
            .order_by(Artifact.seq)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_a_document_needing_more_memory_than_the_bound_fails_alone_and_the_pool_goes_on(
    sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    rng = random.Random(7)
    unbounded = Settings(database_url=sqlite_url, processing_processes=1, parse_memory_mb=0)
    with make_cpu_pool(unbounded) as probe:  # how large a pool process is before any document
        baseline = probe.submit(address_space_mb).result()
    limit = baseline + HEADROOM_MB
    settings = unbounded.model_copy(update={"parse_memory_mb": limit})
    source_id, batch_id = new_batch(sqlite_sessions, tmp_path)
    add_documents(
        sqlite_sessions, batch_id, source_id, [text_note(rng, 0).encode(), HUNGRY, text_note(rng, 1).encode()]
    )
    cpu = CpuPool(settings)
    try:
        pid = cpu.executor.submit(os.getpid).result()
        result, report = cpu.process_chunk(
            ChunkInput(batch_id, 0, 3), no_heartbeat, build_steps(settings).fail_chunk
        )
        assert result == ChunkResult(done=2, failed=1) and report.failed_by_stage == {"normalize": 1}
        assert outcomes(sqlite_sessions, batch_id) == [
            (0, "processed", None, None),
            (1, "failed", "normalize", f"needed more than {limit} MiB of memory (LOREGUARD_PARSE_MEMORY_MB); stopped at normalize"),
            (2, "processed", None, None),
        ]  # fmt: skip
        # The same process goes on with the next chunk: nothing died, nothing was restarted.
        add_documents(sqlite_sessions, batch_id, source_id, [text_note(rng, 2).encode()])
        after, _ = cpu.process_chunk(
            ChunkInput(batch_id, 3, 4), no_heartbeat, build_steps(settings).fail_chunk
        )
        assert after == ChunkResult(done=1, failed=0)
        assert cpu.executor.submit(os.getpid).result() == pid and cpu.restarts == 0
    finally:
        cpu.shutdown()


def test_a_pool_process_that_dies_is_replaced_and_only_the_document_that_killed_it_fails(
    sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    rng = random.Random(8)
    settings = Settings(database_url=sqlite_url, processing_processes=1)
    source_id, batch_id = new_batch(sqlite_sessions, tmp_path)
    crash = text_note(rng, 0).encode() + b"\n" + crashing_stage.CRASH_MARKER
    add_documents(
        sqlite_sessions, batch_id, source_id, [text_note(rng, 1).encode(), crash, text_note(rng, 2).encode()]
    )

    def pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=crashing_stage.init_process,
            initargs=(settings, os.getpid()),
        )

    marked: list[ChunkFailureInput] = []
    steps = build_steps(settings)

    def fail(failure: ChunkFailureInput) -> int:
        marked.append(failure)
        return steps.fail_chunk(failure)

    cpu = CpuPool(settings, factory=pool)
    try:
        result, report = cpu.process_chunk(ChunkInput(batch_id, 0, 3), no_heartbeat, fail)
        assert result == ChunkResult(done=2, failed=1)
        assert report.failed_by_stage == {"normalize": 1}
        assert outcomes(sqlite_sessions, batch_id) == [
            (0, "processed", None, None),
            (1, "failed", "normalize", DIED),
            (2, "processed", None, None),
        ]
        assert [(f.start_seq, f.end_seq) for f in marked] == [(1, 2)]
        # The chunk's first run and the crashing document's two tries each broke a pool: each was replaced.
        assert cpu.restarts == 3
        add_documents(sqlite_sessions, batch_id, source_id, [text_note(rng, 3).encode()])
        after, _ = cpu.process_chunk(ChunkInput(batch_id, 3, 4), no_heartbeat, fail)
        assert after == ChunkResult(done=1, failed=0) and cpu.restarts == 3
    finally:
        cpu.shutdown()
