"""Real batches through the real pipeline: Temporal dev server, worker, SQLite and PostgreSQL."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowFailureError

from core.vocabulary import ArtifactStatus
from data import repository
from data.models import Artifact, Batch, Evaluation
from orchestration.constants import SA_BATCH_STATE, STATE_AWAITING_APPROVAL, STATE_COMPLETED
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings, running_worker, wait_for_state
from tests.support.corpus import text_note, write_corpus
from tests.support.http_standins import ChatCompletionsStandIn, StaticSite
from tests.support.library import add_source
from tests.support.operations import decide, start_refresh

# Every test runs on Temporal alone and on the Temporal + Celery hybrid (tests/conftest.py).
pytestmark = [pytest.mark.temporal, pytest.mark.usefixtures("processing_backend")]


def broken_documents(folder: Path) -> None:
    (folder / "zz-corrupt.pdf").write_bytes(b"%PDF-1.4\n\x00\x01garbage that is not a pdf\n%%EOF")
    (folder / "zz-binary.txt").write_bytes(bytes(range(256)) * 8)
    (folder / "zz-empty.html").write_text("<html><head><title>x</title></head><body></body></html>")


async def test_batch_stores_every_document_and_fails_bad_ones_alone(
    namespace: TemporalNamespace, session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_corpus(folder, 40)
    broken_documents(folder)
    source_id = add_source(session_factory, folder)
    client = await namespace.connect()
    settings = pipeline_settings(db_url, namespace)

    async with running_worker(client, settings):
        batch_id, handle = await start_refresh(client, session_factory, source_id=source_id)
        result = await handle.result()

    assert (result.total, result.stored, result.failed) == (43, 40, 3)
    assert result.total == result.stored + result.failed
    with session_factory() as session:
        failures = {
            Path(uri).name: (stage, error)
            for uri, stage, error in session.execute(
                select(Artifact.uri, Artifact.failed_stage, Artifact.error).where(
                    Artifact.batch_id == batch_id, Artifact.status == ArtifactStatus.FAILED
                )
            )
        }
        assert set(failures) == {"zz-corrupt.pdf", "zz-binary.txt", "zz-empty.html"}
        assert all(stage == "normalize" for stage, _ in failures.values())
        assert "corrupt PDF" in failures["zz-corrupt.pdf"][1]
        assert "empty document" in failures["zz-empty.html"][1]
        assert "undecodable" in failures["zz-binary.txt"][1]
        stored = session.scalars(
            select(Artifact).where(Artifact.batch_id == batch_id, Artifact.status == ArtifactStatus.STORED)
        ).all()
        assert len(stored) == 40
        assert all(a.title and a.word_count and a.content_hash and a.language == "en" for a in stored)
        assert all(a.normalize_ms is not None and a.evaluate_ms is not None for a in stored)
        evaluations = session.scalar(
            select(func.count()).select_from(Evaluation).join(Artifact).where(Artifact.batch_id == batch_id)
        )
        assert evaluations == 40
        batch = session.get(Batch, batch_id)
        assert batch is not None
        assert (batch.status, batch.total, batch.stored, batch.failed) == ("completed", 43, 40, 3)
        assert batch.started_at is not None and batch.finished_at is not None
    description = await handle.describe()
    assert description.typed_search_attributes.get(SA_BATCH_STATE) == STATE_COMPLETED


async def test_second_refresh_finds_every_document_already_in_the_library(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_corpus(folder, 12)
    original = text_note(random.Random(3), 1)
    words = original.split(" ")
    words[50], words[120] = "changed", "edited"  # the same note with two words edited
    (folder / "near-a.txt").write_text(original)
    (folder / "near-b.txt").write_text(" ".join(words))
    source_id = add_source(sqlite_sessions, folder)
    client = await namespace.connect()
    async with running_worker(client, pipeline_settings(sqlite_url, namespace)):
        first, h1 = await start_refresh(client, sqlite_sessions, source_id=source_id)
        await h1.result()
        # a full refresh reads and normalizes every file again (an incremental one would not read them)
        second, h2 = await start_refresh(client, sqlite_sessions, source_id=source_id, full=True)
        await h2.result()
    with sqlite_sessions() as session:
        originals = set(session.scalars(select(Artifact.id).where(Artifact.batch_id == first)))
        near = session.execute(
            select(Artifact.uri, Artifact.near_duplicate_of_id, Artifact.similarity).where(
                Artifact.batch_id == first, Artifact.uri.like("%near-b.txt")
            )
        ).one()
        assert near.near_duplicate_of_id in originals and near.similarity >= 0.95
        dupes = session.scalars(select(Artifact.duplicate_of_id).where(Artifact.batch_id == second)).all()
        assert len(dupes) == 14 and all(d in originals for d in dupes)


async def test_missing_folder_fails_the_batch_with_its_reason(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    source_id = add_source(sqlite_sessions, tmp_path / "gone")
    client = await namespace.connect()
    async with running_worker(client, pipeline_settings(sqlite_url, namespace)):
        batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
        await wait_for_state(handle, STATE_AWAITING_APPROVAL)
        with sqlite_sessions() as session:
            batch = session.get_one(Batch, batch_id)
            assert (batch.status, batch.failed_stage, batch.error_type) == (
                "awaiting_approval",
                "ingest",
                "InvalidSource",
            )
            assert batch.error_message and "gone" in batch.error_message
        await decide(client, sqlite_sessions, batch_id=batch_id, approve=False, actor="ana", reason="retired")
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    with sqlite_sessions() as session:
        batch = session.get_one(Batch, batch_id)
        assert (batch.status, batch.decision, batch.decided_by) == ("failed", "rejected", "ana")
        assert batch.error_type == "InvalidSource"
        assert batch.error_message and "gone" in batch.error_message


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Advisories</title><link>http://example.invalid/</link>
<item><title>Critical firewall vulnerability patched</title><link>http://example.invalid/a</link>
<author>alerts@example.invalid (Grace Hopper)</author><pubDate>Mon, 02 Nov 2026 10:00:00 GMT</pubDate>
<description><![CDATA[<p>A critical security vulnerability in the firewall was exploited; the vendor released a
patch. Every operator should apply the patch and review access logs for signs of a breach.</p>]]></description>
</item>
<item><title>Empty entry</title><link>http://example.invalid/b</link><description></description></item>
</channel></rss>"""

PAGE = """<html><head><title>Incident policy update</title><meta name="author" content="Ada Byron"></head>
<body><nav>Home | About</nav><article><h1>Incident policy update</h1>
<p>The incident response policy now requires that every security incident be reported within one hour.
Compliance reviews will check each threat report against the policy, and audit findings go to the board.</p>
</article><footer>Contact us</footer></body></html>"""


async def test_feed_and_web_page_sources_run_through_the_pipeline(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str
) -> None:
    routes = {
        "/feed.xml": (200, "application/rss+xml", RSS),
        "/page.html": (200, "text/html; charset=utf-8", PAGE),
    }
    with StaticSite(routes) as site:
        with sqlite_sessions.begin() as session:
            feed = repository.create_source(
                session, name="feed", kind="feed", location=site.url_for("/feed.xml")
            ).id
            page = repository.create_source(
                session, name="page", kind="web", location=site.url_for("/page.html")
            ).id
        client = await namespace.connect()
        async with running_worker(client, pipeline_settings(sqlite_url, namespace)):
            feed_batch, h1 = await start_refresh(client, sqlite_sessions, source_id=feed)
            page_batch, h2 = await start_refresh(client, sqlite_sessions, source_id=page)
            feed_result, page_result = await h1.result(), await h2.result()
    assert (feed_result.total, feed_result.stored, feed_result.failed) == (2, 1, 1)
    assert (page_result.total, page_result.stored, page_result.failed) == (1, 1, 0)
    with sqlite_sessions() as session:
        rows = session.execute(
            select(
                Artifact.batch_id,
                Artifact.title,
                Artifact.author,
                Artifact.status,
                Artifact.error,
                Evaluation.label,
            )
            .outerjoin(Evaluation)
            .order_by(Artifact.batch_id, Artifact.seq)
        ).all()
    by_title = {r.title or r.error: r for r in rows}
    article = by_title["Critical firewall vulnerability patched"]
    assert article.batch_id == feed_batch and article.label == "relevant"
    assert article.author and "Grace Hopper" in article.author
    assert any(r.status == ArtifactStatus.FAILED and "empty document" in (r.error or "") for r in rows)
    policy = by_title["Incident policy update"]
    assert (policy.batch_id, policy.author) == (page_batch, "Ada Byron")


async def test_llm_evaluator_chosen_in_settings_labels_the_batch(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_corpus(folder, 8, seed=4)
    source_id = add_source(sqlite_sessions, folder)
    with ChatCompletionsStandIn(fail_first=1, fail_status=429) as llm:
        settings = pipeline_settings(
            sqlite_url,
            namespace,
            evaluator="openai",
            openai_base_url=llm.base_url,
            openai_model="m-1",
        )
        client = await namespace.connect()
        async with running_worker(client, settings):
            _, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
            result = await handle.result()
        assert result.stored == 8
        assert llm.calls == 9  # one 429, retried, then one call per document
    with sqlite_sessions() as session:
        evaluators = session.execute(
            select(Evaluation.evaluator, Evaluation.model, func.count()).group_by(
                Evaluation.evaluator, Evaluation.model
            )
        ).all()
    assert [tuple(e) for e in evaluators] == [("openai", "m-1", 8)]
