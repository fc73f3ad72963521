"""Gathering from folders, feeds and web pages (feeds and pages served on loopback)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from core.errors import ErrorType
from guard.fetching import Fetcher
from guard.gather import (
    SourceError,
    fetch_feed,
    fetch_page,
    list_folder,
    preview_source,
    read_file,
    validate_location,
)
from guard.types import DocumentError
from tests.support.http_standins import StaticSite

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Threat notes</title><link>https://notes.example.org/</link><description>Notes</description>
<item>
  <title>Ransomware group targets backups</title>
  <link>https://notes.example.org/ransomware-backups</link>
  <dc:creator>Ana Silva</dc:creator>
  <pubDate>Tue, 05 Mar 2024 14:30:00 +0100</pubDate>
  <description>Short teaser.</description>
  <content:encoded><![CDATA[<p>The group deletes <b>backups</b> before encrypting servers.</p>]]></content:encoded>
</item>
<item>
  <title>Patch notes for March</title>
  <guid isPermaLink="false">urn:notes:patch-march</guid>
  <description>&lt;p&gt;Twelve fixes, two of them critical.&lt;/p&gt;</description>
</item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Policy updates</title><id>urn:policy</id><updated>2024-04-01T00:00:00Z</updated>
  <entry>
    <title>New password policy</title>
    <link href="https://policy.example.org/passwords"/>
    <id>urn:policy:passwords</id>
    <author><name>Compliance Office</name></author>
    <published>2024-04-01T09:00:00Z</published>
    <updated>2024-04-02T09:00:00Z</updated>
    <content type="html">&lt;p&gt;Passphrases of at least 14 characters replace complexity rules.&lt;/p&gt;</content>
  </entry>
</feed>"""

PAGE = "<html><head><title>Page</title></head><body><p>Hello from a page.</p></body></html>"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# --- folders -------------------------------------------------------------------------------------


def _tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}")


def test_folder_listing_is_sorted_recursive_and_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        [
            "b.txt",
            "a.md",
            "sub/c.html",
            "sub/B.PDF",
            "a-b/x.htm",
            "notes.markdown",
            ".hidden.txt",
            ".git/config.txt",
            "sub/.secret/x.md",
            "image.png",
            "archive.zip",
        ],
    )
    listed = [p.relative_to(tmp_path).as_posix() for p in list_folder(tmp_path, roots=[tmp_path])]
    assert listed == ["a-b/x.htm", "a.md", "b.txt", "notes.markdown", "sub/B.PDF", "sub/c.html"]
    # Same order on every call: a retried ingest numbers documents identically.
    assert [p.relative_to(tmp_path).as_posix() for p in list_folder(tmp_path, roots=[tmp_path])] == listed


@pytest.mark.parametrize(("make", "needle"), [("missing", "does not exist"), ("file", "is not a folder")])
def test_folder_that_is_not_a_folder_is_an_invalid_source(tmp_path: Path, make: str, needle: str) -> None:
    target = tmp_path / "target"
    if make == "file":
        target.write_text("x")
    with pytest.raises(SourceError) as info:
        list_folder(target, roots=[tmp_path])
    assert info.value.kind == ErrorType.INVALID_SOURCE
    assert not info.value.retryable
    assert needle in info.value.message and str(target) in info.value.message


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("a.txt", "text/plain"),
        ("a.md", "text/markdown"),
        ("a.HTML", "text/html"),
        ("a.pdf", "application/pdf"),
    ],
)
def test_read_file_gives_file_uri_and_content_type(tmp_path: Path, name: str, content_type: str) -> None:
    path = tmp_path / "dir with space" / name
    path.parent.mkdir()
    path.write_bytes(b"data")
    doc = read_file(path, max_bytes=100, folder=tmp_path)
    assert doc.content_type == content_type
    assert doc.uri.startswith("file:///") and "dir%20with%20space" in doc.uri
    assert doc.data == b"data"


def test_read_file_refuses_a_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 101)
    with pytest.raises(DocumentError) as info:
        read_file(path, max_bytes=100, folder=tmp_path)
    assert info.value.stage == "ingest" and "exceeds 100 bytes" in info.value.reason


# --- locations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "location", "expected"),
    [
        ("feed", "  https://example.org/feed.xml \n", "https://example.org/feed.xml"),
        ("web", "http://example.org/page", "http://example.org/page"),
        ("feed", "ftp://example.org/feed.xml", "not an http(s) URL"),
        ("web", "example.org/page", "not an http(s) URL"),
        ("web", "https:///nohost", "has no host"),
        ("folder", "", "must not be empty"),
        ("folder", "/definitely/not/here", "does not exist"),
        ("folder", "/etc", "/etc is outside the folders sources may read (/definitely)"),
        ("email", "someone@example.org", "unknown source kind"),
    ],
)
def test_validate_location(kind: str, location: str, expected: str) -> None:
    if expected.startswith("http"):
        assert validate_location(kind, location, folder_roots=[Path("/definitely")]) == expected
    else:
        with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            validate_location(kind, location, folder_roots=[Path("/definitely")])


def test_validate_location_resolves_an_existing_folder(tmp_path: Path) -> None:
    roots = [tmp_path.resolve()]
    assert validate_location("folder", f" {tmp_path} ", folder_roots=roots) == str(tmp_path.resolve())
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        validate_location("folder", str(tmp_path / "f.txt"), folder_roots=roots)


# --- feeds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            RSS,
            "application/rss+xml",
            [
                (
                    "https://notes.example.org/ransomware-backups",
                    {
                        "title": "Ransomware group targets backups",
                        "author": "Ana Silva",
                        "published": "2024-03-05T13:30:00+00:00",
                    },
                    "deletes <b>backups</b>",
                ),
                ("urn:notes:patch-march", {"title": "Patch notes for March"}, "Twelve fixes"),
            ],
        ),
        (
            ATOM,
            "application/atom+xml",
            [
                (
                    "https://policy.example.org/passwords",
                    {
                        "title": "New password policy",
                        "author": "Compliance Office",
                        "published": "2024-04-01T09:00:00+00:00",
                    },
                    "Passphrases of at least 14 characters",
                )
            ],
        ),
    ],
    ids=["rss", "atom"],
)
def test_fetch_feed_turns_entries_into_html_documents_with_hints(
    loopback_fetcher: Fetcher, body: str, content_type: str, expected: list[tuple[str, dict[str, str], str]]
) -> None:
    with StaticSite({"/feed": (200, content_type, body)}) as site:
        docs = fetch_feed(site.url_for("/feed"), loopback_fetcher)
    assert [(d.uri, d.hints) for d in docs] == [(uri, hints) for uri, hints, _ in expected]
    for doc, (_, _, snippet) in zip(docs, expected, strict=True):
        assert doc.content_type == "text/html"
        assert snippet in doc.data.decode("utf-8")


@pytest.mark.parametrize(
    ("route", "kind", "needle"),
    [
        ((200, "text/html", PAGE), ErrorType.INVALID_SOURCE, "is not an RSS/Atom feed"),
        ((404, "text/plain", "gone"), ErrorType.INVALID_SOURCE, "HTTP 404"),
        ((403, "text/plain", "no"), ErrorType.INVALID_SOURCE, "HTTP 403"),
        ((429, "text/plain", "slow down"), ErrorType.SOURCE_UNAVAILABLE, "HTTP 429"),
        ((503, "text/plain", "down"), ErrorType.SOURCE_UNAVAILABLE, "HTTP 503"),
    ],
    ids=["html-page", "404", "403", "429", "503"],
)
def test_fetch_feed_failures_say_whether_retrying_helps(
    loopback_fetcher: Fetcher, route: tuple[int, str, str], kind: str, needle: str
) -> None:
    with StaticSite({"/feed": route}) as site, pytest.raises(SourceError) as info:
        fetch_feed(site.url_for("/feed"), loopback_fetcher)
    assert info.value.kind == kind
    assert needle in info.value.message


def test_unreachable_feed_is_unavailable_not_invalid(loopback_fetcher: Fetcher) -> None:
    with pytest.raises(SourceError) as info:
        fetch_feed(_closed_port_url(), loopback_fetcher)
    assert info.value.kind == ErrorType.SOURCE_UNAVAILABLE and info.value.retryable


# --- pages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "body", "content_type", "data"),
    [
        ("text/html; charset=utf-8", PAGE.encode(), "text/html", PAGE.encode()),
        ("application/xhtml+xml", PAGE.encode(), "text/html", PAGE.encode()),
        ("text/plain; charset=iso-8859-1", "Café".encode("latin-1"), "text/plain", "Café".encode()),
        ("application/pdf", b"%PDF-1.4 ...", "application/pdf", b"%PDF-1.4 ..."),
        ("", b"%PDF-1.7 sniffed", "application/pdf", b"%PDF-1.7 sniffed"),
    ],
    ids=["html", "xhtml", "latin1-text-to-utf8", "pdf", "no-header-sniffed"],
)
def test_fetch_page_takes_content_type_from_the_response(
    loopback_fetcher: Fetcher, header: str, body: bytes, content_type: str, data: bytes
) -> None:
    with StaticSite({"/p": (200, header, body)}) as site:
        doc = fetch_page(site.url_for("/p"), loopback_fetcher, max_bytes=10_000)
    assert (doc.uri, doc.content_type, doc.data) == (site.url_for("/p"), content_type, data)


@pytest.mark.parametrize(
    ("route", "error", "needle"),
    [
        ((200, "image/png", b"\x89PNG"), DocumentError, "unsupported content type image/png"),
        ((200, "text/html", "x" * 2000), DocumentError, "exceeds 1000 bytes"),
        ((404, "text/html", "missing"), SourceError, "HTTP 404"),
        ((410, "text/html", "gone"), SourceError, "HTTP 410"),
        ((408, "text/html", "timeout"), SourceError, "HTTP 408"),
        ((500, "text/html", "oops"), SourceError, "HTTP 500"),
    ],
    ids=["image", "too-big", "404", "410", "408", "500"],
)
def test_fetch_page_failures(
    loopback_fetcher: Fetcher, route: tuple[int, str, bytes | str], error: type[Exception], needle: str
) -> None:
    with StaticSite({"/p": route}) as site, pytest.raises(error) as info:
        fetch_page(site.url_for("/p"), loopback_fetcher, max_bytes=1000)
    assert needle in str(info.value)
    if isinstance(info.value, SourceError):
        assert info.value.retryable == (route[0] in (408, 429) or route[0] >= 500)


def test_preview_shows_the_first_documents_of_a_folder_and_a_feed(
    tmp_path: Path, loopback_fetcher: Fetcher
) -> None:
    _tree(tmp_path, [f"doc{i}.txt" for i in range(8)])
    previewed = preview_source("folder", str(tmp_path), loopback_fetcher, folder_roots=[tmp_path], limit=3)
    assert [Path(d.uri).name for d in previewed] == [
        "doc0.txt",
        "doc1.txt",
        "doc2.txt",
    ]
    with StaticSite({"/feed": (200, "application/rss+xml", RSS)}) as site:
        assert (
            len(preview_source("feed", site.url_for("/feed"), loopback_fetcher, folder_roots=[], limit=1))
            == 1
        )
