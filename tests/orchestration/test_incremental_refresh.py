"""Incremental refreshes through the real stack (Temporal dev server, the worker's activities, SQLite and
PostgreSQL): an unchanged folder completes without reading or evaluating, one changed file is the one document
processed, a 304 feed completes unchanged at source, and a full refresh asked through the operations layer
reads everything and is audited."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.roles import Role
from data import repository
from data.models import AuditEvent, Batch
from operations import Actor
from operations import batches as batch_ops
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings, running_worker
from tests.support.conditional_site import ConditionalSite
from tests.support.corpus import write_corpus
from tests.support.incremental import backdate, evaluations_of_source, write_files
from tests.support.operations import context, start_refresh

pytestmark = [pytest.mark.temporal]

RSS = (
    '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Advisories</title>'
    "<link>https://news.example/</link><description>d</description>"
    "<item><title>Patch now</title><link>https://news.example/patch</link>"
    "<description>Security patches for the VPN servers are out.</description></item>"
    "<item><title>Phishing</title><link>https://news.example/phish</link>"
    "<description>A phishing wave targets finance; security asks for reports.</description></item>"
    "</channel></rss>"
)


def batch_row(sessions: sessionmaker[Session], batch_id: int) -> Batch:
    with sessions() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        session.expunge(batch)
        return batch


async def test_folder_refreshes_read_only_what_changed(
    namespace: TemporalNamespace, session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_corpus(folder, 30, seed=5)
    backdate(folder)
    with session_factory.begin() as session:
        source_id = repository.create_source(session, name="docs", kind="folder", location=str(folder)).id
    client = await namespace.connect()
    async with running_worker(client, pipeline_settings(db_url, namespace, evaluator="keywords")):
        first, handle = await start_refresh(client, session_factory, source_id=source_id)
        assert (await handle.result()).stored == 30
        verdicts = evaluations_of_source(session_factory, source_id)

        second, handle = await start_refresh(client, session_factory, source_id=source_id)
        result = await handle.result()
        row = batch_row(session_factory, second)
        assert (result.status, result.total, row.unchanged, row.recognised) == ("completed", 0, 30, 30)
        assert evaluations_of_source(session_factory, source_id) == verdicts  # no evaluator call

        name = sorted(p.name for p in folder.iterdir())[7]
        write_files(folder, {name: "A new note: the security team moves the audit to April."})
        (folder / sorted(p.name for p in folder.iterdir())[0]).unlink()
        third, handle = await start_refresh(client, session_factory, source_id=source_id)
        result = await handle.result()
        row = batch_row(session_factory, third)
        assert (result.total, result.stored, row.recognised) == (1, 1, 28)
        assert evaluations_of_source(session_factory, source_id) == verdicts + 1
        with session_factory() as session:
            assert repository.count_gone(session, source_id=source_id) == 1

        # A full refresh, asked through the operations layer as the CLI and the Sources page do.
        started = await asyncio.to_thread(
            batch_ops.refresh_source,
            Actor("ops@example.org", frozenset({Role.OPERATOR})),
            context(client, session_factory),
            source_id,
            full=True,
        )
        await client.get_workflow_handle(started.workflow_id).result()
        row = batch_row(session_factory, started.batch_id)
        assert (row.full, row.total, row.recognised, row.stored) == (True, 29, 0, 0)
        assert evaluations_of_source(session_factory, source_id) == verdicts + 1
    with session_factory() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "refresh_full")).one()
        assert audit.actor == "ops@example.org" and "full refresh" in (audit.reason or "")
    assert first < second < third < started.batch_id


async def test_a_feed_answering_304_completes_unchanged_at_source(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str
) -> None:
    with ConditionalSite({"/feed.xml": ("application/rss+xml", RSS)}) as site:
        with sqlite_sessions.begin() as session:
            source_id = repository.create_source(
                session, name="feed", kind="feed", location=site.url_for("/feed.xml")
            ).id
        client = await namespace.connect()
        async with running_worker(client, pipeline_settings(sqlite_url, namespace, evaluator="keywords")):
            _, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
            assert (await handle.result()).stored == 2
            second, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
            result = await handle.result()
        assert site.statuses == [200, 304] and site.body_bytes[1] == 0
        row = batch_row(sqlite_sessions, second)
        assert (result.status, result.total, row.unchanged_at_source) == ("completed", 0, True)
