"""The worker's SLA rollup counts a batch on its day in LOREGUARD_TIMEZONE, not in UTC: a batch started at
02:00 UTC on 2 March is New York's evening of 1 March. Each step that closes a batch rolls up its day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from core.vocabulary import ArtifactStatus, BatchStatus
from data.models import Artifact, Batch, SlaDay
from orchestration.types import FinishBatchInput
from tests.support.library import add_source
from workers import reconcile
from workers.steps import BatchSteps, build_steps

STARTED = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 21:00 on 1 March in New York (UTC-05:00)
ZONE = "America/New_York"

CLOSERS: dict[str, Callable[[BatchSteps, int], object]] = {
    "finish_batch": lambda steps, batch_id: steps.finish_batch(
        FinishBatchInput(batch_id=batch_id, status=BatchStatus.COMPLETED)
    ),
    # the reconciler closing a batch whose workflow timed out in Temporal
    "reconcile": lambda steps, batch_id: reconcile._close(
        steps.settings, steps, batch_id, BatchStatus.FAILED, "its workflow timed out in Temporal"
    ),
}


@pytest.mark.parametrize("step", sorted(CLOSERS))
def test_a_batch_is_rolled_up_on_its_day_in_the_configured_zone(
    sqlite_sessions: sessionmaker[Session], sqlite_url: str, step: str
) -> None:
    source_id = add_source(sqlite_sessions, "/srv/notes", name="notes")
    with sqlite_sessions.begin() as session:
        batch = Batch(source_id=source_id, status=BatchStatus.RUNNING, created_at=STARTED, started_at=STARTED)
        session.add(batch)
        session.flush()
        batch_id = batch.id
        session.add(
            Artifact(
                batch_id=batch_id, source_id=source_id, seq=0, uri="file:///srv/notes/a.txt",
                content_type="text/plain", status=ArtifactStatus.STORED, stored_at=STARTED + timedelta(minutes=5),
            )
        )  # fmt: skip
    steps = build_steps(Settings(_env_file=None, database_url=sqlite_url, timezone=ZONE))
    try:
        CLOSERS[step](steps, batch_id)
    finally:
        steps.http.close()
        steps.sessions.kw["bind"].dispose()

    with sqlite_sessions() as session:
        days = list(session.scalars(select(SlaDay.day).where(SlaDay.source_id == source_id)))
    assert days, f"{step} rolled up no SLA day for the batch"
    assert days == [date(2026, 3, 1)], (
        f"{step} rolled the batch up on {days[0]}, its day in UTC: the worker's rollup must use "
        f"LOREGUARD_TIMEZONE ({ZONE}), where the batch started on 2026-03-01"
    )
