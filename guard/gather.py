"""Gathering raw documents from a source: a local folder, an RSS/Atom feed, or a single web page.

This is the I/O edge of ingest; it returns `RawDocument`s and knows nothing of Temporal or the database.
"""

from __future__ import annotations

import calendar
import html
import io
import logging
import os
import xml.sax.expatreader  # noqa: F401  (feedparser finds its XML parser lazily: loaded before any memory bound)
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import feedparser

from core.errors import ErrorType
from core.vocabulary import SOURCE_KINDS, Stage, unsupported_file_type
from guard.confined import ConfinedFailure, ParseLimits, run_confined, source_limit
from guard.fetching import DEFAULT_MAX_BYTES, Fetched, Fetcher, SourceTooLarge
from guard.folders import inside_roots, read_bounded
from guard.incremental import Gathered, Validators
from guard.locations import validate_location as validate_location  # its home before locations.py
from guard.types import DocumentError, RawDocument, SourceError

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: dict[str, str] = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}

# Media types a web server may send, mapped to the four the pipeline understands.
_MEDIA_TYPES: dict[str, str] = {
    "text/html": "text/html",
    "application/xhtml+xml": "text/html",
    "text/plain": "text/plain",
    "text/markdown": "text/markdown",
    "text/x-markdown": "text/markdown",
    "application/pdf": "application/pdf",
}

Heartbeat = Callable[[], None]  # called while a long listing or fetch goes on (raises when cancelled)


def _no_heartbeat() -> None:
    pass


# --- folders -------------------------------------------------------------------------------------


@dataclass
class FolderCount:
    """What a folder's listing left out, so it does not vanish from a batch's counts: filled in by list_folder."""

    files: int = 0  # every file found (hidden files and folders are never read, so not counted)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> files, e.g. unsupported file type .xyz


def list_folder(
    path: Path,
    *,
    roots: Sequence[Path],
    heartbeat: Heartbeat = _no_heartbeat,
    count: FolderCount | None = None,
) -> list[Path]:
    """Supported files under `path`, recursively, hidden files and folders skipped; `path` must lie in a root.

    Sorted by relative POSIX path so that a retried ingest numbers the documents the same way. `heartbeat` is
    called once per folder listed, so listing a large tree shows it is alive. `count`, when given, receives
    the number of files and those of an unsupported type.
    """
    return [path / name for name in folder_names(path, roots=roots, heartbeat=heartbeat, count=count)]


def folder_names(
    path: Path,
    *,
    roots: Sequence[Path],
    heartbeat: Heartbeat = _no_heartbeat,
    count: FolderCount | None = None,
) -> list[str]:
    """list_folder's files as relative POSIX names, in its order: a string a file, no Path objects, so a
    100,000-file folder costs the ingest a few megabytes rather than tens."""
    inside_roots(path, roots)  # before anything else: not even whether it exists is told outside the roots
    if not path.exists():
        raise SourceError(ErrorType.INVALID_SOURCE, f"folder {path} does not exist")
    if not path.is_dir():
        raise SourceError(ErrorType.INVALID_SOURCE, f"{path} is not a folder")
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(path):
        heartbeat()
        # Pruning in place stops os.walk from descending into hidden folders (.git, .venv, ...).
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        below = os.path.relpath(dirpath, path)
        prefix = "" if below == os.curdir else Path(below).as_posix() + "/"
        for name in filenames:
            if name.startswith("."):
                continue
            suffix = Path(name).suffix.lower()
            if count is not None:
                count.files += 1
                if suffix not in SUPPORTED_SUFFIXES:
                    count.skipped[unsupported_file_type(suffix)] += 1
            if suffix not in SUPPORTED_SUFFIXES:
                continue
            found.append(prefix + name)
    found.sort()
    return found


def read_file(path: Path, max_bytes: int, *, folder: Path, allow_hard_links: bool = False) -> RawDocument:
    """One file of the folder source `folder`; links out of it (symbolic, or hard unless `allow_hard_links`) and
    anything but a regular file are skipped."""
    content_type = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if content_type is None:
        raise DocumentError(Stage.INGEST, unsupported_file_type(path.suffix))
    data = read_bounded(path, folder, max_bytes, allow_hard_links=allow_hard_links)
    return RawDocument(uri=path.absolute().as_uri(), content_type=content_type, data=data)


# --- HTTP ----------------------------------------------------------------------------------------


def _check_status(response: Fetched, url: str) -> None:
    status = response.status
    if status < 400:
        return
    reason = f"{url} answered HTTP {status} {response.reason}".rstrip()
    # 408 and 429 say "not now", so they are worth another try like server errors.
    if status >= 500 or status in (408, 429):
        raise SourceError(ErrorType.SOURCE_UNAVAILABLE, reason)
    raise SourceError(ErrorType.INVALID_SOURCE, reason)


def _media_type(header: str | None) -> tuple[str, str | None]:
    """('text/html', 'iso-8859-1') from 'text/html; charset=ISO-8859-1'."""
    if not header:
        return "", None
    message = Message()
    message["content-type"] = header
    charset = message.get_param("charset")
    return message.get_content_type().lower(), charset if isinstance(charset, str) else None


def _sniff(data: bytes) -> str | None:
    head = data[:512].lstrip().lower()
    if head.startswith(b"%pdf-"):
        return "application/pdf"
    if head.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    return None


def _to_utf8(data: bytes, charset: str | None) -> bytes:
    """Re-encode text to UTF-8 when the server declared its charset, because only the header knew it."""
    if not charset or charset.lower().replace("_", "-") in ("utf-8", "utf8"):
        return data
    try:
        return data.decode(charset).encode("utf-8")
    except (LookupError, UnicodeDecodeError):
        return data  # a wrong header: let normalize detect the encoding itself


def fetch_page(
    url: str, fetcher: Fetcher, max_bytes: int, *, heartbeat: Heartbeat = _no_heartbeat
) -> RawDocument:
    try:
        response = fetcher.get(url, max_bytes=max_bytes, heartbeat=heartbeat)
    except SourceTooLarge as exc:
        raise DocumentError(Stage.INGEST, f"page too large: exceeds {max_bytes} bytes") from exc
    _check_status(response, url)
    return _page_document(response, url)


def _page_document(response: Fetched, url: str) -> RawDocument:
    data, header = response.body, response.headers.get("content-type")
    media, charset = _media_type(header)
    content_type = _MEDIA_TYPES.get(media)
    if content_type is None and media in ("", "application/octet-stream", "binary/octet-stream"):
        content_type = _sniff(data)
    if content_type is None:
        raise DocumentError(Stage.INGEST, f"unsupported content type {media or '(none)'}")
    if content_type != "application/pdf":
        data = _to_utf8(data, charset)
    return RawDocument(uri=url, content_type=content_type, data=data)


def _not_modified(url: str, earlier: Validators, got: Validators) -> Gathered:
    if not earlier:  # nothing was asked conditionally: a 304 says nothing of what the source holds
        raise SourceError(
            ErrorType.INVALID_SOURCE, f"{url} answered 304 Not Modified to a request that was not conditional"
        )
    return Gathered([], got.or_else(earlier), not_modified=True)


def gather_page(
    url: str,
    fetcher: Fetcher,
    max_bytes: int,
    *,
    validators: Validators | None = None,
    heartbeat: Heartbeat = _no_heartbeat,
) -> Gathered:
    """The page, asked for conditionally with `validators` from the last successful refresh: a 304 answer
    gathers nothing. A page too large or of an unsupported type is the page's DocumentError, as fetch_page."""
    earlier = validators or Validators()
    try:
        response = fetcher.get(
            url, max_bytes=max_bytes, heartbeat=heartbeat, headers=earlier.request_headers()
        )
    except SourceTooLarge as exc:
        raise DocumentError(Stage.INGEST, f"page too large: exceeds {max_bytes} bytes") from exc
    got = Validators.from_headers(response.headers)
    if response.status == 304:
        return _not_modified(url, earlier, got)
    _check_status(response, url)
    return Gathered([_page_document(response, url)], got)


# --- feeds ---------------------------------------------------------------------------------------


def _published(entry: Any) -> str | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    # feedparser normalises every date it understands to a UTC struct_time.
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC).isoformat()


def _entry_html(entry: Any) -> str:
    bodies = entry.get("content") or []
    # Prefer the full HTML body; the summary is often a teaser.
    for body in sorted(bodies, key=lambda b: "html" not in str(b.get("type", ""))):
        value = str(body.get("value") or "")
        if value.strip():
            return value if "html" in str(body.get("type", "")) else f"<p>{html.escape(value)}</p>"
    return str(entry.get("summary") or "")


def _entry_document(entry: Any, feed_url: str, index: int) -> RawDocument:
    title = str(entry.get("title") or "").strip()
    # Wrapping the fragment in a page lets the HTML normalizer and metadata extractor treat it like any page.
    page = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f"<body><article>{_entry_html(entry)}</article></body></html>"
    )
    hints: dict[str, str] = {}
    if title:
        hints["title"] = title
    author = str(entry.get("author") or "").strip()
    if author:
        hints["author"] = author
    published = _published(entry)
    if published:
        hints["published"] = published
    uri = str(entry.get("link") or entry.get("id") or f"{feed_url}#entry-{index}")
    return RawDocument(uri=uri, content_type="text/html", data=page.encode("utf-8"), hints=hints)


def parse_feed(sent: tuple[str, bytes]) -> list[RawDocument]:
    """The documents of a feed `(url, body)`; run in a confined process (see fetch_feed).

    feedparser takes a str or bytes argument for a file name or URL to open when it looks like one (a body
    reading "/etc/passwd" or "/dev/zero" would be read from this machine's disk): it only ever gets a file
    object over the body. It resolves no external entities and fetches nothing named inside the feed.
    """
    url, body = sent
    parsed = feedparser.parse(io.BytesIO(body))
    if not parsed.entries and not parsed.get("version"):
        raise SourceError(ErrorType.INVALID_SOURCE, f"{url} is not an RSS/Atom feed")
    return [_entry_document(entry, url, i) for i, entry in enumerate(parsed.entries)]


def fetch_feed(
    url: str,
    fetcher: Fetcher,
    *,
    heartbeat: Heartbeat = _no_heartbeat,
    limits: ParseLimits | None = None,
) -> list[RawDocument]:
    """Every entry of the feed; the feed is read under the same byte limit, decompressed, as a page.

    The feed is parsed in a short-lived process under `limits` (memory and time), so a feed that makes the
    parser allocate without end fails as ParseLimit and the worker or dashboard asking lives on.
    """
    return gather_feed(url, fetcher, heartbeat=heartbeat, limits=limits).documents


def gather_feed(
    url: str,
    fetcher: Fetcher,
    *,
    validators: Validators | None = None,
    heartbeat: Heartbeat = _no_heartbeat,
    limits: ParseLimits | None = None,
) -> Gathered:
    """fetch_feed, asked for conditionally with `validators` from the last successful refresh: a 304 answer
    gathers nothing (and parses nothing)."""
    earlier = validators or Validators()
    response = fetcher.get(url, heartbeat=heartbeat, headers=earlier.request_headers())
    got = Validators.from_headers(response.headers)
    if response.status == 304:
        return _not_modified(url, earlier, got)
    _check_status(response, url)
    try:
        documents = run_confined(
            parse_feed,
            (url, response.body),
            limits=limits or ParseLimits(),
            what="parsing the feed",
            heartbeat=heartbeat,
        )
    except ConfinedFailure as exc:
        raise source_limit(url, exc) from exc
    return Gathered(documents, got)


# --- locations and previews ----------------------------------------------------------------------


def preview_source(
    kind: str,
    location: str,
    fetcher: Fetcher,
    *,
    folder_roots: Sequence[Path],
    limit: int = 5,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: ParseLimits | None = None,
    allow_hard_links: bool = False,
    count: FolderCount | None = None,
) -> list[RawDocument]:
    """The first `limit` documents a source would yield, for a dry run before it is saved (and in `count`, a
    folder's files and those a batch would skip).

    Unreadable folder files are skipped so one bad file does not hide what the rest look like.
    """
    if kind == "folder":
        folder = Path(location)
        documents: list[RawDocument] = []
        for path in list_folder(folder, roots=folder_roots, count=count):
            if len(documents) >= limit:
                break
            try:
                documents.append(read_file(path, max_bytes, folder=folder, allow_hard_links=allow_hard_links))
            except DocumentError as exc:
                log.info("preview skips %s: %s", path, exc.reason)
        return documents
    if kind == "feed":
        return fetch_feed(location, fetcher, limits=limits)[:limit]
    if kind == "web":
        return [fetch_page(location, fetcher, max_bytes)][:limit]
    raise ValueError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
