"""The incremental refresh's store on SQLite and PostgreSQL: migration 0013 up and down with the library's search
intact, sightings written once per completed batch (a finish run twice writes them once), matches by raw hash
over more keys than one IN list holds, and gone marks that only the batch's own completion applies."""

from __future__ import annotations

from alembic import command
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.vocabulary import ArtifactStatus
from dashboard import library
from data import repository
from data.migrate import alembic_config, current_revision
from data.models import Artifact, Sighting, Source, utcnow


def folder_source(session: Session) -> int:
    return repository.create_source(session, name="docs", kind="folder", location="/srv/docs").id


def add_artifacts(session: Session, batch_id: int, source_id: int, count: int, *, status: str) -> None:
    now = utcnow()
    session.add_all(
        Artifact(
            batch_id=batch_id,
            source_id=source_id,
            seq=i,
            uri=f"file:///srv/docs/{i}.txt",
            content_type="text/plain",
            status=status,
            raw_hash=f"{i:064x}",
            file_size=100 + i,
            file_mtime_ns=1_700_000_000_000_000_000 + i,
            file_inode=10_000 + i,
            title=f"Note {i}",
            text=f"security note number {i}",
            stored_at=now if status == ArtifactStatus.STORED else None,
        )
        for i in range(count)
    )
    session.flush()


def test_migration_0013_goes_down_and_up_and_the_library_search_still_works(
    session_factory: sessionmaker[Session], db_url: str
) -> None:
    command.downgrade(alembic_config(db_url), "0012")
    assert current_revision(db_url) == "0012"
    command.upgrade(alembic_config(db_url), "head")
    with session_factory.begin() as session:
        source_id = folder_source(session)
        batch_id = repository.create_batch(session, source_id=source_id).id
        add_artifacts(session, batch_id, source_id, 3, status=ArtifactStatus.STORED)
    with session_factory() as session:
        # the search index is kept by triggers (migration 0006) that 0013's column changes must not drop
        assert library.library_count(session, library.LibraryFilter(search="security"))[0] == 3


def test_a_completed_batch_records_its_sightings_once_even_when_finished_twice(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        source_id = folder_source(session)
        batch_id = repository.create_batch(session, source_id=source_id).id
        add_artifacts(session, batch_id, source_id, 1200, status=ArtifactStatus.STORED)
    for _ in range(2):  # finish_batch retried after a crash between its commit and the activity's reply
        with session_factory.begin() as session:
            repository.finish_batch(session, batch_id=batch_id, status="completed")
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Sighting)) == 1200
        seen = repository.load_sightings(session, source_id=source_id)
        assert seen["file:///srv/docs/7.txt"] == (107, 1_700_000_000_000_000_007, 10_007)

    # a later batch that saw one file changed overwrites that sighting
    with session_factory.begin() as session:
        later = repository.create_batch(session, source_id=source_id).id
        session.add(
            Artifact(
                batch_id=later,
                source_id=source_id,
                seq=0,
                uri="file:///srv/docs/7.txt",
                content_type="text/plain",
                status=ArtifactStatus.UNCHANGED,
                raw_hash="f" * 64,
                file_size=999,
                file_mtime_ns=5,
                file_inode=6,
            )
        )
    with session_factory.begin() as session:
        repository.finish_batch(session, batch_id=later, status="completed")
    with session_factory() as session:
        assert repository.load_sightings(session, source_id=source_id)["file:///srv/docs/7.txt"] == (
            999,
            5,
            6,
        )
        assert session.scalar(select(func.count()).select_from(Sighting)) == 1200


def test_a_failed_batch_records_no_sighting(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        source_id = folder_source(session)
        batch_id = repository.create_batch(session, source_id=source_id).id
        add_artifacts(session, batch_id, source_id, 5, status=ArtifactStatus.STORED)
    with session_factory.begin() as session:
        repository.finish_batch(session, batch_id=batch_id, status="failed", error_message="x")
    with session_factory() as session:
        assert repository.load_sightings(session, source_id=source_id) == {}


def test_raw_hash_matches_span_many_in_lists_and_point_at_the_stored_original(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        source_id = folder_source(session)
        first = repository.create_batch(session, source_id=source_id).id
        add_artifacts(session, first, source_id, 1200, status=ArtifactStatus.STORED)
        second = repository.create_batch(session, source_id=source_id).id
    keys = [(f"file:///srv/docs/{i}.txt", f"{i:064x}") for i in range(1200)]
    keys.append(("file:///srv/docs/3.txt", "0" * 63 + "4"))  # another file's bytes under this URI: no match
    with session_factory() as session:
        found = repository.stored_raw_matches(
            session, source_id=source_id, other_than_batch=second, keys=keys
        )
        originals = dict(
            session.execute(select(Artifact.uri, Artifact.id).where(Artifact.batch_id == first))
            .tuples()
            .all()
        )
    assert len(found) == 1200
    assert (
        found[("file:///srv/docs/42.txt", f"{42:064x}")].artifact_id == originals["file:///srv/docs/42.txt"]
    )
    assert found[("file:///srv/docs/42.txt", f"{42:064x}")].title == "Note 42"


def test_gone_marks_wait_for_the_batch_that_found_the_files_missing(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        source_id = folder_source(session)
        first = repository.create_batch(session, source_id=source_id).id
        add_artifacts(session, first, source_id, 4, status=ArtifactStatus.STORED)
    with session_factory.begin() as session:
        repository.finish_batch(session, batch_id=first, status="completed")
        second = repository.create_batch(session, source_id=source_id).id
        repository.mark_missing(
            session,
            source_id=source_id,
            batch_id=second,
            uris=["file:///srv/docs/1.txt", "file:///srv/docs/2.txt"],
        )
    with session_factory.begin() as session:  # the ingest retried: it found only one file missing this time
        repository.mark_missing(
            session, source_id=source_id, batch_id=second, uris=["file:///srv/docs/2.txt"]
        )
    with session_factory() as session:
        assert repository.count_gone(session, source_id=source_id) == 0  # nothing before completion
    with session_factory.begin() as session:
        repository.finish_batch(session, batch_id=second, status="completed")
    with session_factory() as session:
        gone = session.scalars(select(Artifact.uri).where(Artifact.gone_at.is_not(None))).all()
        assert gone == ["file:///srv/docs/2.txt"]
        assert set(repository.load_sightings(session, source_id=source_id)) == {
            f"file:///srv/docs/{i}.txt" for i in (0, 1, 3)
        }
        source = session.get(Source, source_id)
        assert source is not None and source.http_etag is None
