"""create_batch, the scheduled refresh's activity: idempotent per scheduled run, none for a paused source."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError

from core.settings import Settings
from data import repository
from data.models import Batch
from orchestration.types import CreateBatchInput
from workers.monitoring import create_scheduled_batch
from workers.steps import BatchSteps, build_steps


@pytest.fixture
def steps(sqlite_url: str, sqlite_sessions: sessionmaker[Session]) -> Iterator[BatchSteps]:
    built = build_steps(Settings(database_url=sqlite_url))
    yield built
    built.http.close()


def test_create_batch_is_idempotent_and_respects_pause(
    steps: BatchSteps, sqlite_sessions: sessionmaker[Session]
) -> None:
    with sqlite_sessions.begin() as session:
        source_id = repository.create_source(session, name="s", kind="folder", location="/srv").id
    first = create_scheduled_batch(
        steps, CreateBatchInput(source_id=source_id, key="source-1-refresh-a/run1")
    )
    again = create_scheduled_batch(
        steps, CreateBatchInput(source_id=source_id, key="source-1-refresh-a/run1")
    )
    other = create_scheduled_batch(
        steps, CreateBatchInput(source_id=source_id, key="source-1-refresh-b/run1")
    )
    assert first == again != other
    with sqlite_sessions() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 2
        assert repository.get_batch(session, batch_id=first).trigger == "schedule"

    with sqlite_sessions.begin() as session:
        repository.get_source(session, source_id=source_id).paused = True
    assert create_scheduled_batch(steps, CreateBatchInput(source_id=source_id, key="c/run1")) == 0

    with pytest.raises(ApplicationError) as info:
        create_scheduled_batch(steps, CreateBatchInput(source_id=source_id + 1, key="d/run1"))
    assert info.value.non_retryable and info.value.type == "InvalidSource"
