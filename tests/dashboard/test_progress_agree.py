"""The Batches list and a batch's own page agree on its progress: while it runs, and while it waits for a
decision with its stored documents quarantined."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from core.vocabulary import ArtifactStatus
from data import repository
from data.models import Artifact, utcnow
from tests.dashboard.conftest import OpenPage, clear_streamlit_caches
from tests.dashboard.seed import Seeded


def both(at: AppTest, batch_id: int) -> tuple[str, str]:
    """(the list row's progress, the batch page's progress bar) as the page shows them."""
    rows = at.dataframe[0].value.set_index("batch")
    return str(rows.loc[batch_id, "progress"]), at.get("progress")[0].proto.text


def test_list_and_detail_agree_while_a_batch_runs(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    b5 = seeded.batches["b5"]  # running: 60 stored, 10 failed, 50 still waiting
    listed, bar = both(open_page("batches", batch=str(b5)), b5)
    assert listed == "70 of 120 (58%)"
    assert bar.startswith("70 of 120 documents done · running")

    with dashboard_env.begin() as session:  # the workers store 20 more
        waiting = session.scalars(
            select(Artifact.id)
            .where(Artifact.batch_id == b5, Artifact.status == ArtifactStatus.INGESTED)
            .limit(20)
        ).all()
        session.execute(
            update(Artifact)
            .where(Artifact.id.in_(waiting))
            .values(status=ArtifactStatus.STORED, stored_at=utcnow())
        )
    clear_streamlit_caches()  # the next live refresh, past both caches' few seconds
    listed, bar = both(open_page("batches", batch=str(b5)), b5)
    assert listed == "90 of 120 (75%)"
    assert bar.startswith("90 of 120 documents done · running")


def test_list_and_detail_agree_on_a_batch_awaiting_a_decision(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    with dashboard_env.begin() as session:  # 4 documents stored, 1 failed, then the batch failed a stage
        batch = repository.create_batch(session, source_id=seeded.sources["alpha"])
        batch.status, batch.started_at, batch.ingested_at = "running", utcnow(), utcnow()
        repository.insert_artifacts(
            session,
            rows=[
                {"batch_id": batch.id, "source_id": batch.source_id, "seq": seq, "uri": f"file:///d/{seq}.txt",
                 "content_type": "text/plain", "status": ArtifactStatus.FAILED if seq == 4 else ArtifactStatus.STORED}
                for seq in range(5)
            ],
        )  # fmt: skip
        repository.compensate_batch(session, batch_id=batch.id, stage="evaluate")  # quarantines the 4
        repository.mark_awaiting_decision(
            session,
            batch_id=batch.id,
            stage="evaluate",
            error_type="TooManyFailures",
            error_message="the model refused",
            deadline=utcnow() + timedelta(hours=1),
        )
        batch_id = batch.id

    listed, bar = both(open_page("batches", batch=str(batch_id)), batch_id)

    assert listed == "5 of 5 (100%)"
    assert bar.startswith("5 of 5 documents done · awaiting approval")
