"""What the crash and shutdown tests share: worker processes a test can kill -9, waiting on a batch across
outages, and the exactly-once check of what the batch stored."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from core.vocabulary import ArtifactStatus
from data import repository
from data.models import Artifact, Batch, Evaluation
from orchestration.types import BatchResult

TEMPORAL_WORKER = [sys.executable, "-m", "workers"]
CELERY_WORKER = [sys.executable, "-m", "cli.main", "celery-worker", "--concurrency", "2"]


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


def stored_count(sessions: sessionmaker[Session], batch_id: int) -> int:
    with sessions() as session:
        return repository.artifact_status_counts(session, batch_id=batch_id).get(ArtifactStatus.STORED, 0)


async def wait_for_progress(sessions: sessionmaker[Session], batch_id: int, at_least: int) -> int:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        n = stored_count(sessions, batch_id)
        if n >= at_least:
            return n
        await asyncio.sleep(0.1)
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


def assert_stored_exactly_once(
    sessions: sessionmaker[Session], batch_id: int, result: BatchResult, docs: int
) -> None:
    assert (result.total, result.stored, result.failed) == (docs, docs, 0)
    with sessions() as session:
        rows, seqs = session.execute(
            select(func.count(), func.count(func.distinct(Artifact.seq))).where(Artifact.batch_id == batch_id)
        ).one()
        assert rows == seqs == docs
        stored = session.scalar(
            select(func.count()).where(
                Artifact.batch_id == batch_id, Artifact.status == ArtifactStatus.STORED
            )
        )
        evaluations = session.scalar(
            select(func.count()).select_from(Evaluation).join(Artifact).where(Artifact.batch_id == batch_id)
        )
        assert stored == evaluations == docs
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.status == "completed"
