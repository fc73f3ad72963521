"""The per-document time limit: a document over it fails alone with that reason, and the pool process goes on."""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from data import repository
from data.models import Artifact
from guard.types import RawDocument
from orchestration.types import ChunkInput, ChunkResult
from tests.support import slow_stage
from tests.support.corpus import text_note
from tests.support.documents import add_documents
from workers.pool import process_chunk_in_pool
from workers.stages import pipeline
from workers.steps_base import no_heartbeat

NOTE = "The access review found two stale administrator accounts; both were disabled the same day."
REASON = "took longer than 1 s (LOREGUARD_DOCUMENT_TIME_LIMIT_SECONDS); stopped at normalize"


def test_a_slow_document_fails_alone_with_the_limit_as_reason_and_the_pool_process_survives(
    sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    rng = random.Random(5)
    with sqlite_sessions.begin() as session:
        source_id = repository.create_source(session, name="notes", kind="folder", location=str(tmp_path)).id
        batch_id = repository.create_batch(session, source_id=source_id).id
    slow = NOTE.encode() + b"\n" + slow_stage.SLOW_MARKER
    add_documents(sqlite_sessions, batch_id, source_id, [text_note(rng, 0).encode(), slow, NOTE.encode()])
    settings = Settings(database_url=sqlite_url, document_time_limit_seconds=1, processing_processes=1)
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        max_workers=1,
        mp_context=context,
        initializer=slow_stage.init_process,
        initargs=(settings, os.getpid()),
    ) as pool:
        pid = pool.submit(os.getpid).result()
        result, report = process_chunk_in_pool(pool, ChunkInput(batch_id, 0, 3), no_heartbeat)

        assert result == ChunkResult(done=2, failed=1), (
            f"the slow document ran its {slow_stage.SLOW_SECONDS:g} s to the end ({result}): the per-document "
            "time limit (LOREGUARD_DOCUMENT_TIME_LIMIT_SECONDS, workers/stages/pipeline.py) did not stop it at 1 s"
        )
        assert report.failed_by_stage == {"normalize": 1}
        with sqlite_sessions() as session:
            rows = session.execute(
                select(Artifact.seq, Artifact.status, Artifact.failed_stage, Artifact.error)
                .where(Artifact.batch_id == batch_id)
                .order_by(Artifact.seq)
            ).all()
        assert [tuple(r) for r in rows] == [
            (0, "processed", None, None),
            (1, "failed", "normalize", REASON),
            (2, "processed", None, None),
        ]

        # The same pool process takes the next chunk: nothing was killed or replaced.
        add_documents(sqlite_sessions, batch_id, source_id, [text_note(rng, 1).encode()])
        after, _ = process_chunk_in_pool(pool, ChunkInput(batch_id, 3, 4), no_heartbeat)
        assert after == ChunkResult(done=1, failed=0)
        assert pool.submit(os.getpid).result() == pid


def test_the_limit_also_stops_a_slow_extract_in_the_main_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def forever(*args: object) -> object:
        until = time.monotonic() + slow_stage.SLOW_SECONDS  # "forever", bounded: no limit fails, not hangs
        while time.monotonic() < until:
            sum(range(1000))
        return extract_metadata(*args)

    pipeline.warm_up()  # the language model loads once, not within the document's time
    extract_metadata = pipeline.extract_metadata
    monkeypatch.setattr(pipeline, "extract_metadata", forever)
    result = pipeline.run_cpu_stages(
        RawDocument("file:///x.txt", "text/plain", NOTE.encode()), time_limit=0.3
    )

    assert (result.failed_stage, result.metadata) == ("extract", None), (
        "the slow extract ran to the end: the time limit did not stop it at 0.3 s"
    )
    assert (
        result.error == "took longer than 0.3 s (LOREGUARD_DOCUMENT_TIME_LIMIT_SECONDS); stopped at extract"
    )
    assert result.normalized is not None and result.extract_ms >= 250


def test_without_a_limit_or_outside_the_main_thread_a_document_runs_untimed() -> None:
    outcome: list[pipeline.CpuStageResult] = []
    raw = RawDocument("file:///x.txt", "text/plain", NOTE.encode())
    worker = threading.Thread(target=lambda: outcome.append(pipeline.run_cpu_stages(raw, time_limit=0.001)))
    worker.start()
    worker.join()
    assert outcome[0].ok  # no signal handler can be set outside the main thread: no limit, no crash
    assert pipeline.run_cpu_stages(raw, time_limit=0).ok
