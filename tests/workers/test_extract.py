"""Extract: title, author and date as a user would expect to see them in the library."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from guard.types import DocumentError, RawDocument
from tests.support.pdf_builder import minimal_pdf
from workers.stages.extract import extract_metadata, parse_datetime
from workers.stages.normalize import normalize
from workers.stages.types import NormalizedDocument


def metadata_of(
    data: bytes | str, content_type: str, hints: dict[str, str] | None = None
) -> tuple[object, ...]:
    raw = RawDocument(
        "https://example.org/doc", content_type, data.encode() if isinstance(data, str) else data, hints or {}
    )
    meta = extract_metadata(normalize(raw))
    return meta.title, meta.author, meta.published_at


ARTICLE = """<html><head><title>Ignored site title | Site</title>
<meta name="author" content="Lee Park"><meta property="og:title" content="Supply chain attack hits build servers">
<meta property="article:published_time" content="2024-06-01T12:00:00-04:00"></head>
<body><article><h1>Supply chain attack hits build servers</h1><p>Attackers changed a build script.</p></article></body></html>"""

BARE_PAGE = """<html><head><title>Quarterly report</title><meta name="author" content="Finance Team"></head>
<body><div>Revenue grew in every region this quarter.</div></body></html>"""

LONG_FIRST_LINE = "word " * 80


@pytest.mark.parametrize(
    ("data", "content_type", "hints", "expected"),
    [
        (
            ARTICLE,
            "text/html",
            None,
            ("Supply chain attack hits build servers", "Lee Park", datetime(2024, 6, 1, 16, 0, tzinfo=UTC)),
        ),
        (BARE_PAGE, "text/html", None, ("Quarterly report", "Finance Team", None)),
        (
            ARTICLE,
            "text/html",
            {"title": "Feed title", "author": "Feed Author", "published": "2024-07-01T08:00:00+00:00"},
            ("Feed title", "Feed Author", datetime(2024, 7, 1, 8, 0, tzinfo=UTC)),
        ),
        (
            "---\ntitle: From front matter\ndate: 2024-02-12\n---\n# Heading\n\nBody text.",
            "text/markdown",
            None,
            ("From front matter", None, datetime(2024, 2, 12, tzinfo=UTC)),
        ),
        (
            "Intro paragraph first.\n\n## Second level\n\n# The real title\n\nBody.",
            "text/markdown",
            None,
            ("The real title", None, None),
        ),
        (
            "Setext title\n============\n\nBody text here.",
            "text/markdown",
            None,
            ("Setext title", None, None),
        ),
        (
            "\n\n   Meeting notes, 3 May  \nWe discussed the budget.",
            "text/plain",
            None,
            ("Meeting notes, 3 May", None, None),
        ),
        (
            minimal_pdf(
                ["Access standard", "All access is reviewed."],
                {"Author": "Security Office", "CreationDate": "D:20240115093000+01'00'"},
            ),
            "application/pdf",
            None,
            ("Access standard", "Security Office", datetime(2024, 1, 15, 8, 30, tzinfo=UTC)),
        ),
    ],
    ids=[
        "html-metadata",
        "html-title-and-meta-author",
        "feed-hints-win",
        "markdown-front-matter",
        "markdown-first-h1",
        "markdown-setext",
        "text-first-line",
        "pdf-info",
    ],
)
def test_title_author_and_date(
    data: bytes | str, content_type: str, hints: dict[str, str] | None, expected: tuple[object, ...]
) -> None:
    assert metadata_of(data, content_type, hints) == expected


def test_sample_article_metadata(samples: Path) -> None:
    raw = RawDocument("file:///a.html", "text/html", (samples / "vpn-zero-day-exploited.html").read_bytes())
    meta = extract_metadata(normalize(raw))
    assert meta.title == "Attackers exploit VPN gateway zero-day before patch ships"
    assert meta.author == "Priya Raman"
    assert meta.published_at == datetime(2024, 3, 14, 8, 30, tzinfo=UTC)
    assert meta.language == "en"
    assert 400 < meta.word_count < 550


def test_a_long_first_line_is_trimmed_to_200_characters() -> None:
    title, _, _ = metadata_of(LONG_FIRST_LINE + "\nsecond line", "text/plain")
    assert isinstance(title, str) and 150 < len(title) <= 200 and not title.endswith(" ")


def test_word_count_counts_words_not_punctuation() -> None:
    raw = RawDocument("file:///n.txt", "text/plain", b"Don't panic -- the plan, v2.0, has 3 steps!")
    assert extract_metadata(normalize(raw)).word_count == 9


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-14T09:30:00+01:00", datetime(2024, 3, 14, 8, 30, tzinfo=UTC)),
        ("2024-03-14T09:30:00Z", datetime(2024, 3, 14, 9, 30, tzinfo=UTC)),
        ("2024-03-14 09:30:00", datetime(2024, 3, 14, 9, 30, tzinfo=UTC)),
        ("2024-03-14", datetime(2024, 3, 14, tzinfo=UTC)),
        ("Tue, 05 Mar 2024 14:30:00 +0100", datetime(2024, 3, 5, 13, 30, tzinfo=UTC)),
        ("last Tuesday", None),
        ("", None),
        (None, None),
    ],
)
def test_dates_become_timezone_aware_utc(value: str | None, expected: datetime | None) -> None:
    assert parse_datetime(value) == expected


def test_missing_metadata_is_none_not_an_error() -> None:
    title, author, published = metadata_of(
        "<html><body><p>Just a sentence on a page.</p></body></html>", "text/html"
    )
    assert (title, author, published) == ("Just a sentence on a page.", None, None)


def test_a_document_without_text_cannot_be_extracted() -> None:
    empty = NormalizedDocument("file:///x", "text/plain", "  ", "und", "0" * 64, 0, None)
    with pytest.raises(DocumentError) as info:
        extract_metadata(empty)
    assert info.value.stage == "extract"
