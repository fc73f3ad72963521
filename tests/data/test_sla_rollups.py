"""SLA rollups on SQLite and PostgreSQL: written by the worker's finish step, recomputed (never double
counted) when a batch finishes again, equal to a rebuild, built by the migration for existing batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import DateTime, column, insert, select, table
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from core.vocabulary import ArtifactStatus, BatchStatus
from data import repository
from data.db import make_engine, make_session_factory
from data.migrate import alembic_config, upgrade
from data.models import Artifact, Batch, SlaDay, SlaDayBucket, Source
from orchestration.types import FinishBatchInput
from workers.steps import build_steps

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def add_batch(
    session: Session, source_id: int, start: datetime, hours: list[float], statuses: list[str], status: str
) -> int:
    batch = Batch(source_id=source_id, status=status, created_at=start, started_at=start, workflow_id=None)
    session.add(batch)
    session.flush()
    for seq, (h, s) in enumerate(zip(hours, statuses, strict=True)):
        session.add(
            Artifact(
                batch_id=batch.id, source_id=source_id, seq=seq, uri=f"file:///{batch.id}/{seq}",
                content_type="text/plain", status=s,
                stored_at=start + timedelta(hours=h) if s != ArtifactStatus.FAILED else None,
            )
        )  # fmt: skip
    return batch.id


def rollup(session: Session) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    days = session.execute(
        select(SlaDay.day, SlaDay.source_id, SlaDay.batches, SlaDay.documents, SlaDay.stored, SlaDay.failed,
               SlaDay.on_time).order_by(SlaDay.day, SlaDay.source_id)
    ).all()  # fmt: skip
    buckets = session.execute(
        select(
            SlaDayBucket.day, SlaDayBucket.source_id, SlaDayBucket.bucket, SlaDayBucket.documents
        ).order_by(SlaDayBucket.day, SlaDayBucket.source_id, SlaDayBucket.bucket)
    ).all()
    return [tuple(r) for r in days], [tuple(r) for r in buckets]


def test_the_finish_step_rolls_up_the_batch_day_once_and_again_after_a_retry(db_url: str) -> None:
    upgrade(db_url)
    steps = build_steps(Settings(database_url=db_url))
    with steps.sessions.begin() as session:
        source = Source(name="alpha", kind="folder", location="/srv/alpha")
        session.add(source)
        session.flush()
        source_id = source.id
        # a batch that failed and waits: its stored documents quarantined, one failed; not finished yet
        waiting = add_batch(
            session, source_id, DAY + timedelta(hours=1), [1.0, 2.0, 9.0],
            [ArtifactStatus.QUARANTINED, ArtifactStatus.QUARANTINED, ArtifactStatus.FAILED], BatchStatus.AWAITING_APPROVAL,
        )  # fmt: skip
        done = add_batch(
            session,
            source_id,
            DAY + timedelta(hours=20),
            [0.5, 5.0],
            [ArtifactStatus.STORED] * 2,
            BatchStatus.COMPLETED,
        )
    steps.finish_batch(FinishBatchInput(batch_id=done, status=BatchStatus.COMPLETED))
    steps.finish_batch(FinishBatchInput(batch_id=done, status=BatchStatus.COMPLETED))  # an activity retried
    with steps.sessions() as session:
        days, buckets = rollup(session)
    assert days == [(DAY.date(), source_id, 1, 2, 2, 0, 1)]  # the waiting batch is not finished: not counted
    assert buckets == [
        (DAY.date(), source_id, repository.bucket_of(0.5 * 3600), 1),
        (DAY.date(), source_id, repository.bucket_of(5.0 * 3600), 1),
    ]

    # the approved retry completes: its quarantined documents are stored again; the failed one stays late
    steps.finish_batch(FinishBatchInput(batch_id=waiting, status=BatchStatus.COMPLETED))
    with steps.sessions.begin() as session:
        incremental = rollup(session)
        assert incremental[0] == [(DAY.date(), source_id, 2, 5, 4, 1, 3)]
        repository.rebuild_sla_rollups(session, target_hours=4.0, zone="UTC")
        assert rollup(session) == incremental
    steps.sessions.kw["bind"].dispose()


# The schema as of revision 0005, written without the models (which describe today's schema).
WHEN = DateTime(timezone=True)  # stored as the models store times
OLD_SOURCES = table(
    "sources", column("id"), column("name"), column("kind"), column("location"),
    column("refresh_interval_seconds"), column("paused"), column("created_at", WHEN), column("updated_at", WHEN),
)  # fmt: skip
OLD_BATCHES = table(
    "batches", column("id"), column("source_id"), column("trigger"), column("status"), column("attempt"),
    column("total"), column("stored"), column("failed"), column("created_at", WHEN), column("started_at", WHEN),
)  # fmt: skip
OLD_ARTIFACTS = table(
    "artifacts", column("batch_id"), column("source_id"), column("seq"), column("uri"), column("content_type"),
    column("status"), column("stored_at", WHEN), column("ingested_at", WHEN),
)  # fmt: skip


def add_old_batch(
    session: Session, source_id: int, start: datetime, hours: list[float], statuses: list[str], status: str
) -> None:
    batch_id = session.execute(
        insert(OLD_BATCHES).values(
            source_id=source_id, trigger="manual", status=status, attempt=1, total=len(hours), stored=0,
            failed=0, created_at=start, started_at=start,
        ).returning(OLD_BATCHES.c.id)
    ).scalar_one()  # fmt: skip
    for seq, (h, s) in enumerate(zip(hours, statuses, strict=True)):
        session.execute(
            insert(OLD_ARTIFACTS).values(
                batch_id=batch_id, source_id=source_id, seq=seq, uri=f"file:///{batch_id}/{seq}",
                content_type="text/plain", status=s, ingested_at=start,
                stored_at=start + timedelta(hours=h) if s != ArtifactStatus.FAILED else None,
            )
        )  # fmt: skip


def test_the_migration_builds_rollups_for_finished_batches_and_a_source_deletion_removes_them(
    db_url: str,
) -> None:
    upgrade(db_url, "0005")
    engine = make_engine(db_url)
    sessions: sessionmaker[Session] = make_session_factory(engine)
    with sessions.begin() as session:
        source_id = session.execute(
            insert(OLD_SOURCES).values(
                name="beta", kind="folder", location="/srv/beta", refresh_interval_seconds=3600, paused=False,
                created_at=DAY, updated_at=DAY,
            ).returning(OLD_SOURCES.c.id)
        ).scalar_one()  # fmt: skip
        add_old_batch(
            session,
            source_id,
            DAY,
            [1.0, 3.0],
            [ArtifactStatus.STORED, ArtifactStatus.FAILED],
            BatchStatus.FAILED,
        )
        add_old_batch(
            session,
            source_id,
            DAY + timedelta(days=1, hours=23),
            [4.0],
            [ArtifactStatus.STORED],
            BatchStatus.COMPLETED,
        )
    upgrade(db_url)
    with sessions() as session:
        days, buckets = rollup(session)
        assert days == [
            (DAY.date(), source_id, 1, 2, 1, 1, 1),
            ((DAY + timedelta(days=1)).date(), source_id, 1, 1, 1, 0, 1),  # 4 h exactly is on time
        ]
        assert sum(n for *_, n in buckets) == 2
    with sessions.begin() as session:
        repository.delete_source(session, source_id=source_id)
    with sessions() as session:
        assert rollup(session) == ([], [])
    command.downgrade(alembic_config(db_url), "0005")
    engine.dispose()


def test_percentiles_from_buckets_are_upper_bounds_within_nine_percent() -> None:
    times = [1.0, 2.5, 30.0, 59.0, 61.0, 3600.0, 14400.0, 14401.0, 86400.0]
    for seconds in times:
        upper = repository.bucket_upper_seconds(repository.bucket_of(seconds))
        assert seconds <= upper <= seconds * 1.0906
    counts = [(repository.bucket_of(t), 1) for t in times]
    assert repository.percentile_seconds(counts, 0.5) == repository.bucket_upper_seconds(
        repository.bucket_of(61.0)
    )
    assert repository.percentile_seconds([], 0.5) is None


def test_loreguard_sla_rebuild_recomputes_the_rollups(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import run

    upgrade(db_url)
    engine = make_engine(db_url)
    sessions: sessionmaker[Session] = make_session_factory(engine)
    with sessions.begin() as session:
        source = Source(name="gamma", kind="folder", location="/srv/gamma")
        session.add(source)
        session.flush()
        add_batch(session, source.id, DAY, [1.0, 3.0], [ArtifactStatus.STORED] * 2, BatchStatus.COMPLETED)
    monkeypatch.setenv("LOREGUARD_DATABASE_URL", db_url)
    monkeypatch.setenv("LOREGUARD_SLA_TARGET_HOURS", "2")  # the target changed: rebuild counts against it
    monkeypatch.setenv("LOREGUARD_TIMEZONE", "America/New_York")  # and the zone: midnight UTC is the eve
    assert run(["sla", "rebuild", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"source_days": 1' in out and '"zone": "America/New_York"' in out
    with sessions() as session:
        (day,) = session.scalars(select(SlaDay)).all()
        assert (day.documents, day.on_time, day.target_hours) == (2, 1, 2.0)
        assert (day.day, day.zone) == ((DAY - timedelta(days=1)).date(), "America/New_York")
    engine.dispose()


def test_a_zone_day_runs_from_local_midnight_to_local_midnight() -> None:
    """Days of a zone with summer time are 23 or 25 hours long; a batch belongs to the local day it started."""
    from datetime import date

    start, end = repository.day_bounds(date(2026, 3, 29), "Europe/Berlin")  # clocks go forward at 02:00
    assert (start, end - start) == (datetime(2026, 3, 28, 23, tzinfo=UTC), timedelta(hours=23))
    start, end = repository.day_bounds(date(2026, 10, 25), "Europe/Berlin")  # and back at 03:00
    assert (start, end - start) == (datetime(2026, 10, 24, 22, tzinfo=UTC), timedelta(hours=25))
    assert repository.local_day(datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "Europe/Berlin") == date(
        2026, 3, 29
    )
    assert repository.local_day(datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "UTC") == date(2026, 3, 28)
