"""What a source sends reaches the parsers as content only: nothing in it is opened as a file or fetched as a URL,
and parsing it is bounded in memory, so a hostile feed or page fails alone and the process asking lives on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.errors import ErrorType
from core.roles import Role
from core.settings import Settings
from guard.confined import ParseLimits, run_confined
from guard.fetching import Fetcher
from guard.gather import fetch_feed, fetch_page
from guard.types import DocumentError, RawDocument, SourceError
from operations import Actor, Context
from operations import sources as source_ops
from operations.errors import Refused, Unreachable
from tests.support.address_space import address_space_mb
from tests.support.hostile_standins import Body, HostileSite, TrickleHeaders
from workers import processing
from workers.stages.extract import extract_metadata
from workers.stages.normalize import normalize

SECRET = "the private key of the payroll server"
LOCAL_FEED = (
    "<rss version='2.0'><channel><title>local</title>"
    f"<item><title>{SECRET}</title><description>{SECRET}</description></item></channel></rss>"
)


def a_feed(entries: int) -> bytes:
    item = b"<item><title>Advisory</title><description>patch the gateway</description></item>"
    return b"<rss version='2.0'><channel><title>t</title>" + item * entries + b"</channel></rss>"


@pytest.fixture
def local_feed(tmp_path: Path) -> Path:
    path = tmp_path / "feed.xml"
    path.write_text(LOCAL_FEED)
    return path


@pytest.mark.parametrize("body", ["local-feed", "/dev/zero"])
def test_a_feed_whose_body_names_a_file_is_not_read_from_disk(
    body: str, local_feed: Path, loopback_fetcher: Fetcher
) -> None:
    named = str(local_feed) if body == "local-feed" else body
    with HostileSite({"/feed.xml": Body(named.encode())}) as site:
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            fetch_feed(site.url_for("/feed.xml"), loopback_fetcher)
    assert (info.value.kind, info.value.message) == (
        ErrorType.INVALID_SOURCE,
        f"{site.url_for('/feed.xml')} is not an RSS/Atom feed",
    )
    assert time.monotonic() - started < 10  # /dev/zero was not read until memory ran out


def test_entities_and_doctypes_in_a_feed_fetch_nothing(local_feed: Path, loopback_fetcher: Fetcher) -> None:
    with HostileSite({}) as spy:
        feed = (
            f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{spy.url_for("/rss.dtd")}" ['
            f'<!ENTITY file SYSTEM "{local_feed.as_uri()}"><!ENTITY web SYSTEM "{spy.url_for("/entity")}">'
            f'<!ENTITY % remote SYSTEM "{spy.url_for("/params")}"> %remote;]>'
            "<rss version='2.0'><channel><item><title>Advisory &file; &web;</title>"
            "<description>patch the gateway</description></item></channel></rss>"
        )
        with HostileSite({"/feed.xml": Body(feed.encode())}) as site:
            [doc] = fetch_feed(site.url_for("/feed.xml"), loopback_fetcher)
        assert spy.paths() == []
    assert SECRET not in doc.data.decode() and "Advisory" in doc.hints["title"]


def test_a_page_whose_body_is_a_path_or_a_url_is_only_text(
    local_feed: Path, loopback_fetcher: Fetcher
) -> None:
    with HostileSite({}) as spy:
        bodies = {"/path": str(local_feed), "/url": spy.url_for("/fetched-by-a-parser")}
        routes = {path: Body(body.encode(), content_type="text/html") for path, body in bodies.items()}
        with HostileSite(routes) as site:
            for path, body in bodies.items():
                raw = fetch_page(site.url_for(path), loopback_fetcher, 1024 * 1024)
                try:
                    doc = normalize(raw)
                except DocumentError:
                    continue  # nothing read from anywhere: an empty page is a fine outcome too
                extract_metadata(doc)
                assert doc.text == body  # the path or URL itself is the page's text, nothing behind it
        assert spy.paths() == []


def test_a_deeply_nested_page_fails_with_the_parser_limit_as_its_reason() -> None:
    page = (
        b"<html><body>"
        + b"<div>" * 5000
        + b"An advisory nobody can read."
        + b"</div>" * 5000
        + b"</body></html>"
    )
    with pytest.raises(DocumentError) as info:
        normalize(raw_html(page))
    assert info.value.reason == (
        "HTML nested deeper than 256 levels (the HTML parser's limit): no text could be read from it"
    )
    # A page nested less deeply than the limit is read as before.
    shallow = b"<html><body>" + b"<div>" * 100 + b"An advisory anyone can read." + b"</div>" * 100
    assert normalize(raw_html(shallow)).text == "An advisory anyone can read."


def raw_html(data: bytes) -> RawDocument:
    return RawDocument("https://example.org/page", "text/html", data)


def test_a_feed_that_needs_more_memory_than_allowed_fails_as_parse_limit_and_smaller_ones_parse(
    loopback_fetcher: Fetcher,
) -> None:
    # The bound sits a little above what a confined process holds before it parses anything.
    baseline = run_confined(address_space_mb, None, limits=ParseLimits(0), what="measuring")
    limits = ParseLimits(memory_mb=baseline + 48, seconds=60)
    routes = {"/small.xml": Body(a_feed(10)), "/large.xml": Body(a_feed(100_000))}
    with HostileSite(routes) as site:
        assert len(fetch_feed(site.url_for("/small.xml"), loopback_fetcher, limits=limits)) == 10
        with pytest.raises(SourceError) as info:
            fetch_feed(site.url_for("/large.xml"), loopback_fetcher, limits=limits)
        # This process parsed nothing itself and goes on.
        assert len(fetch_feed(site.url_for("/small.xml"), loopback_fetcher, limits=limits)) == 10
    assert info.value.kind == ErrorType.PARSE_LIMIT and not info.value.retryable
    assert info.value.message == (
        f"{site.url_for('/large.xml')}: parsing the feed needed more than {baseline + 48} MiB of memory "
        "(LOREGUARD_PARSE_MEMORY_MB); it was stopped"
    )


def dry_run_context(sessions: sessionmaker[Session], **overrides: object) -> tuple[Actor, Context]:
    settings = Settings(allowed_hosts=["127.0.0.1"], **overrides)  # type: ignore[arg-type]
    # A dry run needs no Temporal.
    return Actor("op@example.org", frozenset({Role.OPERATOR})), Context(settings, sessions, None, processing)  # type: ignore[arg-type]


def test_the_dry_run_of_a_feed_whose_body_names_a_file_reads_no_file(
    local_feed: Path, sqlite_sessions: sessionmaker[Session]
) -> None:
    actor, ctx = dry_run_context(sqlite_sessions)
    with HostileSite({"/feed.xml": Body(str(local_feed).encode())}) as site:
        draft = source_ops.check_source(
            ctx, name="f", kind="feed", location=site.url_for("/feed.xml"), interval=600
        )
        with pytest.raises(Refused) as info:
            source_ops.preview(actor, ctx, draft)
    assert "is not an RSS/Atom feed" in str(info.value) and SECRET not in str(info.value)


def test_the_dry_run_of_a_server_trickling_its_headers_ends_at_the_fetch_deadline(
    sqlite_sessions: sessionmaker[Session],
) -> None:
    actor, ctx = dry_run_context(sqlite_sessions, fetch_deadline_seconds=2.0)
    with HostileSite({"/feed.xml": TrickleHeaders(every=0.3)}) as site:
        draft = source_ops.check_source(
            ctx, name="f", kind="feed", location=site.url_for("/feed.xml"), interval=600
        )
        started = time.monotonic()
        with pytest.raises(Unreachable) as info:
            source_ops.preview(actor, ctx, draft)
        elapsed = time.monotonic() - started
    assert "took longer than 2 s" in str(info.value) and "LOREGUARD_FETCH_DEADLINE_SECONDS" in str(info.value)
    assert 2.0 <= elapsed < 3.5
