"""The worker's own folder-roots check, through the steps as the worker builds them (build_steps): a folder
source whose location was written to the database by hand, past registration's check, is refused at ingest and
nothing of it is read. Registration is tested in tests/operations; this is the second line."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError

from core.settings import Settings
from data import repository
from data.models import Artifact
from orchestration.types import IngestInput
from tests.support.corpus import write_corpus
from tests.support.library import add_source
from workers.steps import build_steps


def test_ingest_refuses_a_folder_outside_the_roots_that_registration_never_saw(
    sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    allowed.mkdir()
    write_corpus(elsewhere, 3)
    source_id = add_source(sqlite_sessions, elsewhere, name="by hand")  # no operations layer: no check
    with sqlite_sessions.begin() as session:
        batch_id = repository.create_batch(session, source_id=source_id).id
    settings = Settings(_env_file=None, database_url=sqlite_url, folder_roots=[allowed], state_dir=tmp_path)
    steps = build_steps(settings)
    try:
        result = steps.ingest_source(IngestInput(batch_id=batch_id))
    except ApplicationError as err:
        refused = err
    else:
        pytest.fail(
            f"the worker ingested {result.total} document(s) from {elsewhere}, outside LOREGUARD_FOLDER_ROOTS: "
            "its own check at ingest (workers/ingest_steps.py, list_folder's roots) is bypassed"
        )
    finally:
        steps.http.close()

    assert "is outside the folders sources may read" in str(refused), str(refused)
    assert str(allowed) in str(refused)  # the roots that apply, named
    assert refused.non_retryable
    with sqlite_sessions() as session:
        assert session.scalar(select(func.count()).select_from(Artifact)) == 0
