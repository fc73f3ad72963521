"""The library store on SQLite and PostgreSQL: migrations, validation, idempotent writes, SQL aggregates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from core.vocabulary import ArtifactStatus
from data import repository
from data.db import make_engine
from data.migrate import alembic_config, current_revision, upgrade
from data.models import Artifact, AuditEvent, Batch, Evaluation, Source

TABLES = {"sources", "batches", "artifacts", "evaluations", "alerts", "audit_events"}


def test_migrations_create_the_schema_and_are_idempotent(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)  # a second start changes nothing
    assert current_revision(db_url) == ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    engine = make_engine(db_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    command.downgrade(alembic_config(db_url), "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(db_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


@pytest.mark.parametrize(
    ("name", "kind", "interval", "message"),
    [
        ("  ", "folder", 3600, "needs a name"),
        ("x", "ftp", 3600, "unknown source kind"),
        ("x", "folder", 10, "at least 60 seconds"),
    ],
)
def test_bad_sources_are_refused_and_nothing_is_written(
    session_factory: sessionmaker[Session], name: str, kind: str, interval: int, message: str
) -> None:
    with session_factory() as session:
        with pytest.raises(ValueError, match=message):
            repository.create_source(
                session, name=name, kind=kind, location="/tmp", refresh_interval_seconds=interval
            )
        session.commit()
        assert session.scalar(select(func.count()).select_from(Source)) == 0


def test_duplicate_source_name_is_refused(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        repository.create_source(session, name="news", kind="feed", location="https://example.org/rss")
    with session_factory() as session, pytest.raises(repository.DuplicateSourceName, match="news"):
        repository.create_source(session, name="news", kind="web", location="https://example.org/")
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Source)) == 1


def make_batch(sessions: sessionmaker[Session], source_name: str = "docs") -> tuple[int, int]:
    with sessions.begin() as session:
        source = repository.create_source(session, name=source_name, kind="folder", location="/tmp")
        batch = repository.create_batch(session, source_id=source.id)
        return source.id, batch.id


def artifact_row(batch_id: int, source_id: int, seq: int, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "batch_id": batch_id,
        "source_id": source_id,
        "seq": seq,
        "uri": f"file:///doc-{seq}.txt",
        "content_type": "text/plain",
        "raw": b"text",
        "hints": None,
        "status": ArtifactStatus.INGESTED,
        "failed_stage": None,
        "error": None,
    }
    row.update(extra)
    return row


def test_ingest_twice_keeps_one_row_per_document(session_factory: sessionmaker[Session]) -> None:
    source_id, batch_id = make_batch(session_factory)
    rows = [artifact_row(batch_id, source_id, i) for i in range(10)]
    with session_factory.begin() as session:
        repository.insert_artifacts(session, rows=rows[:6])
    with session_factory.begin() as session:  # a retried ingest writes everything again
        repository.insert_artifacts(session, rows=rows)
        total = repository.record_ingested(session, batch_id=batch_id)
    assert total == 10
    with session_factory() as session:
        assert session.scalar(select(func.count(func.distinct(Artifact.seq)))) == 10


def test_evaluation_upsert_keeps_one_row_with_the_latest_verdict(
    session_factory: sessionmaker[Session],
) -> None:
    source_id, batch_id = make_batch(session_factory)
    with session_factory.begin() as session:
        repository.insert_artifacts(session, rows=[artifact_row(batch_id, source_id, 0)])
        artifact_id = session.scalar(select(Artifact.id))
    verdict = {
        "artifact_id": artifact_id,
        "label": "review",
        "confidence": 0.4,
        "relevance": 0.3,
        "credibility": 0.5,
        "rationale": "first",
        "evaluator": "builtin",
        "model": None,
    }
    for label in ("review", "relevant"):
        with session_factory.begin() as session:
            repository.upsert_evaluations(session, rows=[{**verdict, "label": label}])
    with session_factory() as session:
        assert session.scalars(select(Evaluation.label)).all() == ["relevant"]


def test_finished_batch_counts_add_up(session_factory: sessionmaker[Session]) -> None:
    source_id, batch_id = make_batch(session_factory)
    statuses = [ArtifactStatus.STORED] * 7 + [ArtifactStatus.FAILED] * 3
    with session_factory.begin() as session:
        repository.insert_artifacts(
            session, rows=[artifact_row(batch_id, source_id, i, status=s) for i, s in enumerate(statuses)]
        )
    with session_factory.begin() as session:
        batch = repository.finish_batch(session, batch_id=batch_id, status="completed")
        assert (batch.total, batch.stored, batch.failed) == (10, 7, 3)
    with session_factory() as session:
        (summary,) = repository.list_sources(session)
        assert (summary.documents, summary.errors, summary.last_status) == (7, 3, "completed")
        assert repository.batch_progress(session, batch_id=batch_id) == (10, 10)
        (row,) = repository.list_batches(session, status="completed")
        assert row.finished_at is not None and row.finished_at.tzinfo is not None


def test_library_matches_by_hash_or_simhash_band_among_processed_documents(
    session_factory: sessionmaker[Session],
) -> None:
    source_id, batch_id = make_batch(session_factory)
    docs = [
        (ArtifactStatus.STORED, "h1", (1, 2, 3, 4)),
        (ArtifactStatus.PROCESSED, "h2", (9, 9, 9, 4)),
        (ArtifactStatus.FAILED, "h1", (1, 2, 3, 4)),  # failed documents are not originals
        (ArtifactStatus.STORED, "h3", (7, 7, 7, 7)),
    ]
    with session_factory.begin() as session:
        repository.insert_artifacts(
            session,
            rows=[
                artifact_row(
                    batch_id,
                    source_id,
                    i,
                    status=status,
                    content_hash=h,
                    simhash=-i - 1,
                    simhash_band0=b[0],
                    simhash_band1=b[1],
                    simhash_band2=b[2],
                    simhash_band3=b[3],
                )
                for i, (status, h, b) in enumerate(docs)
            ],
        )
    with session_factory() as session:
        found = repository.find_library_matches(session, content_hashes=["h1"], bands=[[0], [0], [0], [4]])
    assert sorted(m.content_hash for m in found) == ["h1", "h2"]
    assert all(m.simhash < 0 for m in found)  # signed 64-bit values round-trip


def test_datetimes_come_back_timezone_aware_utc(session_factory: sessionmaker[Session]) -> None:
    _, batch_id = make_batch(session_factory)
    moment = datetime(2026, 11, 28, 12, 30, tzinfo=UTC) + timedelta(microseconds=5)
    with session_factory.begin() as session:
        session.get_one(Batch, batch_id).started_at = moment
    with session_factory() as session:
        assert session.get_one(Batch, batch_id).started_at == moment


def test_audit_events_need_an_actor(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session, pytest.raises(ValueError, match="actor"):
        repository.record_audit(session, actor=" ", action="refresh", target="source:1")
    with session_factory.begin() as session:
        repository.record_audit(session, actor="ana", action="refresh", target="source:1", reason="why")
    with session_factory() as session:
        event = session.scalars(select(AuditEvent)).one()
        assert (event.actor, event.action, event.created_at.tzinfo) == ("ana", "refresh", UTC)


def test_deleting_a_source_removes_its_batches_and_artifacts(session_factory: sessionmaker[Session]) -> None:
    source_id, batch_id = make_batch(session_factory)
    with session_factory.begin() as session:
        repository.insert_artifacts(session, rows=[artifact_row(batch_id, source_id, 0)])
    with session_factory.begin() as session:
        repository.delete_source(session, source_id=source_id)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0
        assert session.scalar(select(func.count()).select_from(Artifact)) == 0
