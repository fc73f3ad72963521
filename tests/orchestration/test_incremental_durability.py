"""Crash tests of an incremental refresh: kill -9 of the worker, or of the Temporal dev server, while a refresh of
a changed folder runs; the batch completes with every changed or new document stored exactly once, nothing unchanged read, the deleted
files' documents marked gone once, and the next refresh finds the folder as this one left it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cli.devserver import DevServer
from data import repository
from data.models import Artifact, Batch, Evaluation, Sighting
from orchestration.client import register_search_attributes
from tests.conftest import TemporalNamespace
from tests.support.corpus import write_corpus
from tests.support.crash import WorkerProcess, result_across_outages, wait_for_progress
from tests.support.incremental import backdate, stored_uris
from tests.support.operations import start_refresh

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

DOCS = 900
CHANGED = 400  # files rewritten before the second refresh
REMOVED = 30
ADDED = 40


@pytest.fixture(params=["worker", "temporal server"])
def victim(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def temporal(victim: str, request: pytest.FixtureRequest) -> TemporalNamespace:
    """The test's namespace on the session's server, or the default namespace of a server of its own to kill."""
    if victim == "worker":
        namespace: TemporalNamespace = request.getfixturevalue("namespace")
        return namespace
    server: DevServer = request.getfixturevalue("fresh_dev_server")
    return TemporalNamespace(server.address, "default")


@pytest.fixture
def worker(sqlite_url: str, tmp_path: Path, temporal: TemporalNamespace) -> Iterator[WorkerProcess]:
    env = {
        **os.environ,
        **temporal.env(),
        "LOREGUARD_PROCESSING_BACKEND": "temporal",
        "LOREGUARD_DATABASE_URL": sqlite_url,
        "LOREGUARD_STATE_DIR": str(tmp_path / "state"),
        "LOREGUARD_EVALUATOR": "keywords",
        "LOREGUARD_CHUNK_SIZE": "20",
        "LOREGUARD_HEARTBEAT_SECONDS": "5",
        "LOREGUARD_PROCESSING_PROCESSES": "2",
        "LOREGUARD_FOLDER_ROOTS": json.dumps([str(tmp_path)]),
    }
    proc = WorkerProcess(env, tmp_path / "worker.log")
    yield proc
    proc.stop()


def counts(sessions: sessionmaker[Session], batch_id: int) -> dict[str, int]:
    with sessions() as session:
        return repository.artifact_status_counts(session, batch_id=batch_id)


async def test_kill_9_mid_incremental_refresh_loses_and_duplicates_nothing(
    victim: str,
    temporal: TemporalNamespace,
    sqlite_sessions: sessionmaker[Session],
    worker: WorkerProcess,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    folder = tmp_path / "docs"
    paths = write_corpus(folder, DOCS, seed=21)
    backdate(folder)
    with sqlite_sessions.begin() as session:
        source_id = repository.create_source(session, name="docs", kind="folder", location=str(folder)).id
    client = await temporal.connect()
    if victim == "temporal server":
        await register_search_attributes(client, "default")
    worker.start()
    _, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
    assert (await result_across_outages(handle)).stored == DOCS

    for i, path in enumerate(paths[:CHANGED]):
        amended = f"Amended {i}: the security desk revised this note."
        text = path.read_text()
        changed = (
            text.replace("</article>", f"<p>{amended}</p></article>")
            if "</article>" in text
            else f"{text}\n{amended}\n"
        )
        path.write_text(changed)
    removed = paths[CHANGED : CHANGED + REMOVED]
    for path in removed:
        path.unlink()
    write_corpus(folder / "new", ADDED, seed=22)
    backdate(*paths[:CHANGED], folder / "new")  # the others keep the times the first refresh saw

    batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
    before = await wait_for_progress(sqlite_sessions, batch_id, (CHANGED + ADDED) // 4)
    server: DevServer | None = request.getfixturevalue("fresh_dev_server") if victim != "worker" else None
    if server is None:
        worker.kill9()
    else:
        server.kill()
    assert before < CHANGED + ADDED, "the batch finished before the crash; nothing was tested"
    with sqlite_sessions() as session:
        # nothing of what the batch saw is recorded before it completes
        assert stored_uris(sqlite_sessions, source_id, gone=True) == []
        assert (
            session.scalar(select(func.count()).select_from(Sighting).where(Sighting.batch_id == batch_id))
            == 0
        )
    if server is None:
        worker.start()
    else:
        await asyncio.sleep(1)
        server.start()  # the same SQLite file, the same port
    result = await result_across_outages(handle)

    processed = CHANGED + ADDED
    assert (result.status, result.total, result.stored, result.failed) == (
        "completed",
        processed,
        processed,
        0,
    )
    with sqlite_sessions() as session:
        rows, seqs = session.execute(
            select(func.count(), func.count(func.distinct(Artifact.seq))).where(Artifact.batch_id == batch_id)
        ).one()
        assert rows == seqs == processed
        evaluations = session.scalar(
            select(func.count()).select_from(Evaluation).join(Artifact).where(Artifact.batch_id == batch_id)
        )
        assert evaluations == processed
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.recognised == DOCS - CHANGED - REMOVED
        sightings = session.scalar(
            select(func.count()).select_from(Sighting).where(Sighting.source_id == source_id)
        )
        assert sightings == DOCS - REMOVED + ADDED
    assert stored_uris(sqlite_sessions, source_id, gone=True) == sorted(
        p.absolute().as_uri() for p in removed
    )

    third, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
    result = await result_across_outages(handle)
    assert (result.total, result.stored) == (0, 0)
    with sqlite_sessions() as session:
        batch = session.get(Batch, third)
        assert batch is not None and batch.recognised == DOCS - REMOVED + ADDED
