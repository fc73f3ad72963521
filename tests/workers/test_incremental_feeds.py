"""Incremental refresh of feeds and pages against a real loopback server that honours conditional requests:
the validators of the last successful refresh are sent, a 304 gathers nothing and the batch says so, items
stored before are recognised by their link and raw hash before any stage, and every fetch keeps its guards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError

from core.settings import Settings
from data import repository
from data.models import Artifact, Source
from guard.incremental import Validators
from tests.support.conditional_site import ConditionalSite
from tests.support.http_standins import Reply
from tests.support.incremental import evaluations_of_source, refresh_with_steps
from workers.steps import BatchSteps, build_steps


def rss(items: dict[str, str]) -> str:
    entries = "".join(
        f"<item><title>{title}</title><link>https://news.example/{slug}</link>"
        f"<guid>https://news.example/{slug}</guid><description>{body}</description></item>"
        for slug, (title, body) in ((s, (s.replace("-", " ").title(), b)) for s, b in items.items())
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Advisories</title>'
        f"<link>https://news.example/</link><description>d</description>{entries}</channel></rss>"
    )


ITEMS = {
    "patch-tuesday": "Security patches for the mail servers are out; apply them this week.",
    "phishing-wave": "A phishing wave targets the finance team; report suspicious messages.",
    "firewall-change": "The firewall rules change on Monday; security reviews every exception.",
}
PAGE = "<html><head><title>Policy</title></head><body><p>Our security policy: patch within a week.</p></body></html>"


@pytest.fixture
def make_steps(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> Iterator[Callable[..., BatchSteps]]:
    built: list[BatchSteps] = []

    def make(**overrides: object) -> BatchSteps:
        given: dict[str, object] = {
            "database_url": db_url,
            "evaluator": "keywords",
            "allowed_hosts": ["127.0.0.1"],
            "folder_roots": [tmp_path],
            **overrides,
        }
        settings = Settings(**given)  # type: ignore[arg-type]
        steps = build_steps(settings)
        built.append(steps)
        return steps

    yield make
    for steps in built:
        steps.http.close()
        steps.fetcher.close()


def add_source(sessions: sessionmaker[Session], kind: str, url: str) -> int:
    with sessions.begin() as session:
        return repository.create_source(session, name=f"{kind} source", kind=kind, location=url).id


@pytest.mark.parametrize(("etag", "last_modified"), [(True, True), (True, False), (False, True)])
def test_an_unchanged_feed_answers_304_and_the_batch_completes_unchanged_at_source(
    make_steps: Callable[..., BatchSteps],
    session_factory: sessionmaker[Session],
    etag: bool,
    last_modified: bool,
) -> None:
    with ConditionalSite(
        {"/feed.xml": ("application/rss+xml", rss(ITEMS))}, etag=etag, last_modified=last_modified
    ) as site:
        source_id = add_source(session_factory, "feed", site.url_for("/feed.xml"))
        steps = make_steps()
        first = refresh_with_steps(steps, session_factory, source_id)
        assert (first.stored, first.unchanged_at_source) == (3, False)
        assert "if-none-match" not in site.requests[0].headers
        assert "if-modified-since" not in site.requests[0].headers

        second = refresh_with_steps(steps, session_factory, source_id)
        sent = site.requests[-1].headers
        assert ("if-none-match" in sent) == etag
        assert ("if-modified-since" in sent) == last_modified
        assert site.statuses == [200, 304]
        assert site.body_bytes[-1] == 0 and site.body_bytes[0] > 0
        assert (second.status, second.total, second.unchanged_at_source) == ("completed", 0, True)
        assert evaluations_of_source(session_factory, source_id) == 3


def test_a_changed_feed_stores_only_its_new_and_edited_items_the_rest_skip_every_stage(
    make_steps: Callable[..., BatchSteps], session_factory: sessionmaker[Session]
) -> None:
    with ConditionalSite({"/feed.xml": ("application/rss+xml", rss(ITEMS))}) as site:
        source_id = add_source(session_factory, "feed", site.url_for("/feed.xml"))
        steps = make_steps()
        refresh_with_steps(steps, session_factory, source_id)
        edited = {
            **ITEMS,
            "phishing-wave": "A second phishing wave targets finance and HR; security asks for reports.",
            "new-audit": "The yearly security audit starts in March; controls are reviewed.",
        }
        site.update("/feed.xml", rss(edited))
        changed = refresh_with_steps(steps, session_factory, source_id)
        assert site.statuses == [200, 200]
        assert (changed.total, changed.stored, changed.unchanged) == (4, 2, 2)
        with session_factory() as session:
            rows = session.query(Artifact).filter_by(batch_id=changed.batch_id, status="unchanged").all()
        # recognised by link and raw hash at ingest: no stage ran on them
        assert sorted(r.uri for r in rows) == [
            "https://news.example/firewall-change",
            "https://news.example/patch-tuesday",
        ]
        assert all(r.normalize_ms is None and r.duplicate_of_id is not None for r in rows)
        assert evaluations_of_source(session_factory, source_id) == 5


def test_items_of_a_feed_without_validators_are_recognised_by_link_and_content_hash(
    make_steps: Callable[..., BatchSteps], session_factory: sessionmaker[Session]
) -> None:
    with ConditionalSite(
        {"/feed.xml": ("application/rss+xml", rss(ITEMS))}, etag=False, last_modified=False
    ) as site:
        source_id = add_source(session_factory, "feed", site.url_for("/feed.xml"))
        steps = make_steps()
        refresh_with_steps(steps, session_factory, source_id)
        again = refresh_with_steps(steps, session_factory, source_id)
        assert site.statuses == [200, 200]
        assert (again.total, again.stored, again.unchanged) == (3, 0, 3)
        assert evaluations_of_source(session_factory, source_id) == 3
        # the same text under another link is another item: processed (and then found the same content)
        moved = {f"moved-{k}": v for k, v in ITEMS.items()}
        site.update("/feed.xml", rss(moved))
        third = refresh_with_steps(steps, session_factory, source_id)
        with session_factory() as session:
            timed = session.query(Artifact).filter_by(batch_id=third.batch_id).all()
        assert all(r.normalize_ms is not None for r in timed)


def test_validators_reach_the_source_only_when_the_batch_completes(
    make_steps: Callable[..., BatchSteps], session_factory: sessionmaker[Session]
) -> None:
    with ConditionalSite({"/feed.xml": ("application/rss+xml", rss(ITEMS))}) as site:
        source_id = add_source(session_factory, "feed", site.url_for("/feed.xml"))
        steps = make_steps()
        refresh_with_steps(steps, session_factory, source_id, status="failed")
        with session_factory() as session:
            source = session.get(Source, source_id)
            assert source is not None and source.http_etag is None and source.http_last_modified is None
        refresh_with_steps(steps, session_factory, source_id)
        assert "if-none-match" not in site.requests[-1].headers  # the failed batch's validators were not kept
        with session_factory() as session:
            source = session.get(Source, source_id)
            assert source is not None and source.http_etag and source.http_last_modified


def test_a_full_refresh_asks_unconditionally_and_processes_every_item(
    make_steps: Callable[..., BatchSteps], session_factory: sessionmaker[Session]
) -> None:
    with ConditionalSite({"/feed.xml": ("application/rss+xml", rss(ITEMS))}) as site:
        source_id = add_source(session_factory, "feed", site.url_for("/feed.xml"))
        steps = make_steps()
        refresh_with_steps(steps, session_factory, source_id)
        full = refresh_with_steps(steps, session_factory, source_id, full=True)
        assert "if-none-match" not in site.requests[-1].headers
        assert site.statuses == [200, 200]
        with session_factory() as session:
            rows = session.query(Artifact).filter_by(batch_id=full.batch_id).all()
        assert len(rows) == 3 and all(r.normalize_ms is not None for r in rows)
        assert evaluations_of_source(session_factory, source_id) == 3  # same text: still not evaluated twice


def test_an_unchanged_page_answers_304_and_a_changed_one_is_stored(
    make_steps: Callable[..., BatchSteps], session_factory: sessionmaker[Session]
) -> None:
    with ConditionalSite({"/policy": ("text/html; charset=utf-8", PAGE)}) as site:
        source_id = add_source(session_factory, "web", site.url_for("/policy"))
        steps = make_steps()
        assert refresh_with_steps(steps, session_factory, source_id).stored == 1
        same = refresh_with_steps(steps, session_factory, source_id)
        assert (same.total, same.unchanged_at_source, site.body_bytes[-1]) == (0, True, 0)
        site.update("/policy", PAGE.replace("a week", "three days"))
        changed = refresh_with_steps(steps, session_factory, source_id)
        assert (changed.total, changed.stored, changed.unchanged_at_source) == (1, 1, False)


def test_a_conditional_fetch_still_passes_the_address_policy(
    make_steps: Callable[..., BatchSteps], session_factory: sessionmaker[Session]
) -> None:
    with ConditionalSite({"/feed.xml": ("application/rss+xml", rss(ITEMS))}) as site:
        source_id = add_source(session_factory, "feed", site.url_for("/feed.xml"))
        refresh_with_steps(make_steps(), session_factory, source_id)
        calls = site.calls
        guarded = make_steps(allowed_hosts=[])  # loopback is refused by default
        with pytest.raises(ApplicationError) as refused:
            refresh_with_steps(guarded, session_factory, source_id)
        assert refused.value.type == "AddressRefused"
        assert site.calls == calls  # refused before any request, validators or not


def test_a_304_to_an_unconditional_request_is_a_clear_error_not_an_empty_refresh(
    make_steps: Callable[..., BatchSteps], session_factory: sessionmaker[Session]
) -> None:
    with ConditionalSite({"/feed.xml": ("application/rss+xml", rss(ITEMS))}) as site:
        source_id = add_source(session_factory, "feed", site.url_for("/feed.xml"))
        # a broken server that says "not modified" to everyone
        site.respond = lambda request: Reply(304)  # type: ignore[method-assign]
        with pytest.raises(ApplicationError) as refused:
            refresh_with_steps(make_steps(), session_factory, source_id)
        assert "answered 304 Not Modified to a request that was not conditional" in refused.value.message


def test_a_conditional_fetch_keeps_the_byte_limit(
    make_steps: Callable[..., BatchSteps], session_factory: sessionmaker[Session]
) -> None:
    with ConditionalSite(
        {"/policy": ("text/html", PAGE), "/feed.xml": ("application/rss+xml", rss(ITEMS))}
    ) as site:
        page_id = add_source(session_factory, "web", site.url_for("/policy"))
        feed_id = add_source(session_factory, "feed", site.url_for("/feed.xml"))
        roomy = make_steps()
        refresh_with_steps(roomy, session_factory, page_id)
        refresh_with_steps(roomy, session_factory, feed_id)
        site.update("/policy", PAGE.replace("</p>", "</p>" + "<p>padding</p>" * 2000))
        site.update("/feed.xml", rss({**ITEMS, "long": "x" * 50_000}))
        tight = make_steps(max_document_bytes=20_000)
        page = refresh_with_steps(tight, session_factory, page_id)
        assert (page.total, page.failed) == (1, 1)  # the page fails alone, with its reason
        with session_factory() as session:
            error = session.query(Artifact).filter_by(batch_id=page.batch_id).one().error
        assert error == "page too large: exceeds 20000 bytes"
        with pytest.raises(ApplicationError) as too_large:
            refresh_with_steps(tight, session_factory, feed_id)
        assert too_large.value.type == "SourceTooLarge"


def test_validators_a_server_sends_are_kept_only_when_short_and_printable() -> None:
    kept = Validators.from_headers({"etag": '"abc"', "last-modified": "Wed, 21 Oct 2026 07:28:00 GMT"})
    assert kept.request_headers() == {
        "If-None-Match": '"abc"',
        "If-Modified-Since": "Wed, 21 Oct 2026 07:28:00 GMT",
    }
    refused = Validators.from_headers({"etag": '"' + "a" * 600 + '"', "last-modified": "x\x00y"})
    assert refused == Validators() and not refused and refused.request_headers() == {}
