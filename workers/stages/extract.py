"""Extract stage: title, author, publication date and word count of a normalized document."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import lxml.etree
import lxml.html
import trafilatura

from core.vocabulary import Stage
from guard.types import DocumentError
from workers.stages.normalize import html_parser, split_front_matter, strip_markdown
from workers.stages.types import DocumentMetadata, NormalizedDocument

MAX_TITLE_CHARS = 200
MAX_AUTHOR_CHARS = 200

_WORDS = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")  # "don't" is one word
_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)[ \t#]*$", re.M)
_ANY_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
_SETEXT_H1 = re.compile(r"^ {0,3}(\S.*?)[ \t]*\n {0,3}=+[ \t]*$", re.M)
_PUBLISHED_META = (
    "article:published_time",
    "og:published_time",
    "datepublished",
    "date",
    "dc.date",
    "dc.date.issued",
    "dcterms.created",
    "pubdate",
)


def count_words(text: str) -> int:
    return len(_WORDS.findall(text))


def parse_datetime(value: str | None) -> datetime | None:
    """A timezone-aware UTC datetime from ISO 8601 or RFC 2822 text; naive times are taken as UTC."""
    if not value or not value.strip():
        return None
    value = value.strip()
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _clip(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    if len(value) <= limit:
        return value or None
    cut = value[:limit]
    # Cut at a word boundary when there is one in the last fifth, so titles do not end mid-word.
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut).rstrip(" ,;:-")


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None


def _markdown_title(source: str) -> str | None:
    _declared, body = split_front_matter(source)
    for pattern in (_H1, _SETEXT_H1, _ANY_HEADING):
        match = pattern.search(body)
        if match:
            return strip_markdown(match.group(1)).strip() or None
    return None


def _html_metadata(markup: str, uri: str) -> tuple[str | None, str | None, datetime | None]:
    try:
        tree = lxml.html.document_fromstring(markup.encode("utf-8"), parser=html_parser())
    except (lxml.etree.ParserError, ValueError):
        return None, None, None
    metas: dict[str, str] = {}
    for meta in tree.iter("meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").strip().lower()
        content = (meta.get("content") or "").strip()
        if key and content and key not in metas:
            metas[key] = content
    # Meta tags carry a full timestamp; trafilatura's date (htmldate) is only a day.
    published = next((d for k in _PUBLISHED_META if (d := parse_datetime(metas.get(k)))), None)
    page_title = tree.findtext(".//title")
    meta_author = metas.get("author") or metas.get("article:author")

    found = trafilatura.extract_metadata(
        tree, default_url=uri if uri.startswith("http") else None, extensive=False
    )
    title = (found.title if found else None) or page_title
    author = (found.author if found else None) or meta_author
    if published is None and found is not None:
        published = parse_datetime(found.date)
    return title, author, published


def extract_metadata(doc: NormalizedDocument) -> DocumentMetadata:
    if not doc.text.strip():
        raise DocumentError(Stage.EXTRACT, "no text to extract metadata from")
    title = doc.hints.get("title")
    author = doc.hints.get("author")
    published = parse_datetime(doc.hints.get("published"))

    if doc.content_type == "text/html" and doc.markup and not (title and author and published):
        html_title, html_author, html_published = _html_metadata(doc.markup, doc.uri)
        title = title or html_title
        author = author or html_author
        published = published or html_published
    elif doc.content_type == "text/markdown" and doc.markup and not title:
        title = _markdown_title(doc.markup)

    return DocumentMetadata(
        title=_clip(title or _first_line(doc.text), MAX_TITLE_CHARS),
        author=_clip(author, MAX_AUTHOR_CHARS),
        published_at=published,
        word_count=count_words(doc.text),
        language=doc.language,
    )
