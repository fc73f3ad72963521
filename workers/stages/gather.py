"""Gathering raw documents from a source: a local folder, an RSS/Atom feed, or a single web page.

This is the I/O edge of ingest; it returns `RawDocument`s and knows nothing of Temporal or the database.
"""

from __future__ import annotations

import calendar
import html
import logging
import os
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import httpx

from workers.stages.types import DocumentError, RawDocument

log = logging.getLogger(__name__)

INVALID_SOURCE = "InvalidSource"  # the source itself is wrong: retrying will not help
SOURCE_UNAVAILABLE = "SourceUnavailable"  # the source may come back: worth retrying

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

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
SOURCE_KINDS = ("folder", "feed", "web")


class SourceError(Exception):
    """The source as a whole cannot be gathered; `kind` is the error type name the dashboard shows."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.kind == SOURCE_UNAVAILABLE


# --- folders -------------------------------------------------------------------------------------


def list_folder(path: Path) -> list[Path]:
    """Supported files under `path`, recursively, hidden files and folders skipped.

    Sorted by relative POSIX path so that a retried ingest numbers the documents the same way.
    """
    if not path.exists():
        raise SourceError(INVALID_SOURCE, f"folder {path} does not exist")
    if not path.is_dir():
        raise SourceError(INVALID_SOURCE, f"{path} is not a folder")
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(path):
        # Pruning in place stops os.walk from descending into hidden folders (.git, .venv, ...).
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            full = Path(dirpath) / name
            found.append((full.relative_to(path).as_posix(), full))
    found.sort(key=lambda item: item[0])
    return [full for _, full in found]


def read_file(path: Path, max_bytes: int) -> RawDocument:
    content_type = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if content_type is None:
        raise DocumentError("ingest", f"unsupported file type {path.suffix or '(none)'}")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentError("ingest", f"file is {size} bytes, exceeds {max_bytes} bytes")
        data = path.read_bytes()
    except OSError as exc:
        # The file vanished or is unreadable since listing; that document fails, not the batch.
        raise DocumentError("ingest", f"cannot read file: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:  # grew between stat and read
        raise DocumentError("ingest", f"file exceeds {max_bytes} bytes")
    return RawDocument(uri=path.absolute().as_uri(), content_type=content_type, data=data)


# --- HTTP ----------------------------------------------------------------------------------------


def _check_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if status < 400:
        return
    reason = f"{url} answered HTTP {status} {response.reason_phrase}".rstrip()
    # 408 and 429 say "not now", so they are worth another try like server errors.
    if status >= 500 or status in (408, 429):
        raise SourceError(SOURCE_UNAVAILABLE, reason)
    raise SourceError(INVALID_SOURCE, reason)


# httpx.InvalidURL is not an HTTPError, so both are caught around every request.
_REQUEST_ERRORS = (httpx.HTTPError, httpx.InvalidURL)


def _transport_failure(url: str, exc: Exception) -> SourceError:
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return SourceError(INVALID_SOURCE, f"{url} is not a fetchable URL: {exc}")
    return SourceError(SOURCE_UNAVAILABLE, f"cannot reach {url}: {type(exc).__name__}: {exc}")


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


def fetch_page(url: str, client: httpx.Client, max_bytes: int) -> RawDocument:
    try:
        with client.stream("GET", url, follow_redirects=True) as response:
            _check_status(response, url)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise DocumentError("ingest", f"page is {declared} bytes, exceeds {max_bytes} bytes")
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise DocumentError("ingest", f"page exceeds {max_bytes} bytes")
                chunks.append(chunk)
            header = response.headers.get("content-type")
    except _REQUEST_ERRORS as exc:
        raise _transport_failure(url, exc) from exc
    data = b"".join(chunks)
    media, charset = _media_type(header)
    content_type = _MEDIA_TYPES.get(media)
    if content_type is None and media in ("", "application/octet-stream", "binary/octet-stream"):
        content_type = _sniff(data)
    if content_type is None:
        raise DocumentError("ingest", f"unsupported content type {media or '(none)'}")
    if content_type != "application/pdf":
        data = _to_utf8(data, charset)
    return RawDocument(uri=url, content_type=content_type, data=data)


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


def fetch_feed(url: str, client: httpx.Client) -> list[RawDocument]:
    try:
        response = client.get(url, follow_redirects=True)
    except _REQUEST_ERRORS as exc:
        raise _transport_failure(url, exc) from exc
    _check_status(response, url)
    parsed = feedparser.parse(response.content)
    if not parsed.entries and not parsed.get("version"):
        raise SourceError(INVALID_SOURCE, f"{url} is not an RSS/Atom feed")
    return [_entry_document(entry, url, i) for i, entry in enumerate(parsed.entries)]


# --- locations and previews ----------------------------------------------------------------------


def validate_location(kind: str, location: str) -> str:
    """The cleaned location for a new source, or ValueError with a message for the person typing it."""
    cleaned = location.strip()
    if not cleaned:
        raise ValueError("location must not be empty")
    if kind == "folder":
        folder = Path(cleaned).expanduser()
        if not folder.exists():
            raise ValueError(f"folder {folder} does not exist")
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder")
        return str(folder.resolve())
    if kind in ("feed", "web"):
        parts = urlsplit(cleaned)
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"{cleaned} is not an http(s) URL")
        if not parts.hostname:
            raise ValueError(f"{cleaned} has no host name")
        return cleaned
    raise ValueError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")


def preview_source(
    kind: str, location: str, client: httpx.Client, limit: int = 5, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[RawDocument]:
    """The first `limit` documents a source would yield, for a dry run before it is saved.

    Unreadable folder files are skipped so one bad file does not hide what the rest look like.
    """
    if kind == "folder":
        documents: list[RawDocument] = []
        for path in list_folder(Path(location)):
            if len(documents) >= limit:
                break
            try:
                documents.append(read_file(path, max_bytes))
            except DocumentError as exc:
                log.info("preview skips %s: %s", path, exc.reason)
        return documents
    if kind == "feed":
        return fetch_feed(location, client)[:limit]
    if kind == "web":
        return [fetch_page(location, client, max_bytes)][:limit]
    raise ValueError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
