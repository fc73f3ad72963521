"""Hostile sources through the real pipeline: the batch ends, the reason is recorded, nothing else is lost."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.vocabulary import ArtifactStatus
from data.models import Artifact, Batch
from orchestration.constants import STATE_AWAITING_APPROVAL
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings, running_worker, wait_for_state
from tests.support.corpus import write_corpus
from tests.support.hostile_standins import Body, HostileSite, TrickleHeaders, gzip_bomb
from tests.support.library import add_source
from tests.support.operations import start_refresh
from tests.support.pdf_builder import encrypted_with_empty_password, minimal_pdf

pytestmark = pytest.mark.temporal

NOTE = "The vendor access policy now requires hardware keys for every administrator account."
LOCAL_FEED = Body(b"(the path of a local feed file, written by the test)")


async def test_a_hostile_folder_stores_its_documents_and_records_each_skip(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    write_corpus(folder, 5)
    (folder / "locked.pdf").write_bytes(encrypted_with_empty_password(minimal_pdf([NOTE])))
    os.mkfifo(folder / "pipe.txt")
    (tmp_path / "private.md").write_text("not for the library")
    (folder / "escape.md").symlink_to(tmp_path / "private.md")
    (folder / "zero.txt").symlink_to("/dev/zero")
    source_id = add_source(sqlite_sessions, folder, name="inbox")
    client = await namespace.connect()
    async with running_worker(client, pipeline_settings(sqlite_url, namespace)):
        batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
        result = await handle.result()

    assert (result.total, result.stored, result.failed) == (9, 6, 3)
    with sqlite_sessions() as session:
        rows = session.execute(
            select(Artifact.uri, Artifact.status, Artifact.error, Artifact.text).where(
                Artifact.batch_id == batch_id
            )
        ).all()
    stored = {Path(r.uri).name: r.text for r in rows if r.status == ArtifactStatus.STORED}
    assert NOTE in (stored.get("locked.pdf") or "")
    assert sorted(r.error for r in rows if r.status == ArtifactStatus.FAILED) == [
        f"skipped escape.md: a symbolic link to {tmp_path / 'private.md'}, outside the source's folder",
        "skipped pipe.txt: a FIFO, not a regular file",
        "skipped zero.txt: a symbolic link to /dev/zero, outside the source's folder",
    ]


@pytest.mark.parametrize(
    ("allowed", "route", "error_type", "needle"),
    [
        (
            ["127.0.0.1"],
            Body(gzip_bomb(256 * 1024 * 1024), headers={"Content-Encoding": "gzip"}),
            "SourceTooLarge",
            "too large",
        ),
        ([], Body(b"<rss version='2.0'><channel></channel></rss>"), "AddressRefused", "loopback"),
        # A body naming a feed file on the worker's disk (written by the test) or a device is not opened.
        (["127.0.0.1"], LOCAL_FEED, "InvalidSource", "not an RSS/Atom feed"),
        (["127.0.0.1"], Body(b"/dev/zero"), "InvalidSource", "not an RSS/Atom feed"),
        (["127.0.0.1"], TrickleHeaders(every=0.3), "FetchDeadline", "took longer than 2 s"),
    ],
    ids=[
        "gzip-bomb",
        "loopback-not-allowed",
        "body-names-a-local-feed",
        "body-names-dev-zero",
        "trickling-headers",
    ],
)
async def test_a_refused_feed_fails_the_batch_once_with_its_reason(
    namespace: TemporalNamespace,
    sqlite_sessions: sessionmaker[Session],
    sqlite_url: str,
    allowed: list[str],
    route: Body | TrickleHeaders,
    error_type: str,
    needle: str,
    tmp_path: Path,
) -> None:
    if route is LOCAL_FEED:
        feed = tmp_path / "feed.xml"
        feed.write_text(f"<rss version='2.0'><channel><item><title>{NOTE}</title></item></channel></rss>")
        route = Body(str(feed).encode())
    settings = pipeline_settings(
        sqlite_url,
        namespace,
        allowed_hosts=allowed,
        max_document_bytes=1024 * 1024,
        fetch_deadline_seconds=2.0,
    )
    with HostileSite({"/feed.xml": route}) as site:
        source_id = add_source(sqlite_sessions, site.url_for("/feed.xml"), name="feed", kind="feed")
        client = await namespace.connect()
        async with running_worker(client, settings):
            started = time.monotonic()
            batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
            await wait_for_state(handle, STATE_AWAITING_APPROVAL)
            # Not retried: the ingest retry policy would wait 30 s before a second attempt.
            assert time.monotonic() - started < 25
        attempts = len(site.requests)
    assert attempts == (1 if allowed else 0)
    with sqlite_sessions() as session:
        batch = session.get_one(Batch, batch_id)
        assert (batch.failed_stage, batch.error_type) == ("ingest", error_type)
        assert batch.error_message and needle in batch.error_message
        assert session.scalars(select(Artifact.id).where(Artifact.batch_id == batch_id)).all() == []
