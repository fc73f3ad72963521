"""Documents their source no longer has: marked gone (not deleted) in the Library, which filters on it, in the
CSV export and on the document page; and a batch that found its source unchanged says so."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.vocabulary import ArtifactStatus
from dashboard import library
from data import repository
from data.models import Artifact, Batch, utcnow
from tests.dashboard.conftest import Downloads, OpenPage, unescaped
from tests.dashboard.seed import Seeded


def mark_gone(sessions: sessionmaker[Session], count: int) -> list[int]:
    """The newest `count` stored documents marked gone an hour ago, as a completed refresh marks them."""
    with sessions.begin() as session:
        ids = list(
            session.scalars(
                select(Artifact.id)
                .where(Artifact.status == ArtifactStatus.STORED, Artifact.duplicate_of_id.is_(None))
                .order_by(Artifact.stored_at.desc())
                .limit(count)
            )
        )
        session.execute(
            update(Artifact).where(Artifact.id.in_(ids)).values(gone_at=utcnow() - timedelta(hours=1))
        )
    return ids


def test_the_library_filters_documents_gone_from_their_source(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    gone = mark_gone(dashboard_env, 3)
    at = open_page("library")
    total = len(seeded.stored_at)
    assert at.caption[0].value.startswith(f"{total} document(s) match")  # gone ones stay in the library
    page = at.dataframe[0].value
    assert (page["gone since"] != "—").sum() == 3  # a dash where a document is still at its source

    at.selectbox(key="library_presence").set_value(library.GONE).run()
    assert at.caption[0].value.startswith("3 document(s) match")
    assert sorted(at.dataframe[0].value["id"]) == sorted(gone)

    at.selectbox(key="library_presence").set_value(library.PRESENT).run()
    assert at.caption[0].value.startswith(f"{total - 3} document(s) match")
    assert not set(at.dataframe[0].value["id"]) & set(gone)


def test_the_csv_says_since_when_a_document_is_gone(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage, downloads: Downloads
) -> None:
    gone = mark_gone(dashboard_env, 2)
    at = open_page("library")
    at.selectbox(key="library_presence").set_value(library.GONE).run()
    rows = list(csv.DictReader(io.StringIO(downloads.served(at, "library_csv").data.decode("utf-8"))))
    assert sorted(int(r["id"]) for r in rows) == sorted(gone)
    assert all(r["gone since"] for r in rows)  # ISO 8601 with the zone's offset


def test_the_document_page_says_the_document_is_gone_from_its_source(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    (gone,) = mark_gone(dashboard_env, 1)
    at = open_page("document", doc=str(gone))
    assert any("Gone from its source since" in unescaped(w.value) for w in at.warning)
    with dashboard_env() as session:
        present = session.scalar(
            select(Artifact.id)
            .where(Artifact.status == ArtifactStatus.STORED, Artifact.gone_at.is_(None))
            .limit(1)
        )
    at = open_page("document", doc=str(present))
    assert not any("Gone from its source" in unescaped(w.value) for w in at.warning)


def test_a_batch_whose_source_answered_304_says_unchanged_at_source(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    with dashboard_env.begin() as session:
        batch = repository.create_batch(session, source_id=seeded.sources["alpha"])
        session.flush()
        now = utcnow()
        session.execute(
            update(Batch)
            .where(Batch.id == batch.id)
            .values(
                status="completed",
                unchanged_at_source=True,
                started_at=now - timedelta(seconds=2),
                ingested_at=now - timedelta(seconds=1),
                finished_at=now,
            )
        )
        batch_id = batch.id
    at = open_page("batches")
    listed = at.dataframe[0].value
    assert listed.loc[listed["batch"] == batch_id, "progress"].item() == "unchanged at source"
    at = open_page("batches", batch=str(batch_id))
    assert any("Unchanged at source" in unescaped(i.value) for i in at.info)
