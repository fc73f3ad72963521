"""Normalize stage: raw bytes to clean main text with language, content hash and simhash fingerprint."""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import itertools
import re
import threading
import unicodedata
from typing import Any

import charset_normalizer
import lxml.etree
import lxml.html
import numpy as np
import pypdf
import trafilatura
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from core.vocabulary import Stage
from guard.types import DocumentError, RawDocument
from workers.stages.types import NormalizedDocument

MIN_LANGUAGE_CHARS = 20
# The classifier walks bytes in Python (about 1 ms per 2,000 characters); a paragraph names a language.
LANGUAGE_SAMPLE_CHARS = 600

# --- decoding ------------------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: FF FE 00 00 also starts with the UTF-16 LE BOM
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# Characters that do not occur in real text; many of them mean the bytes were not text at all.
_GARBAGE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\ufffd]")


def _undecodable(why: str) -> DocumentError:
    return DocumentError(Stage.NORMALIZE, f"undecodable bytes: {why}")


def _check_plausible(text: str) -> str:
    sample = text[:20000]
    # A stray control character is noise to clean; many of them mean binary data.
    if len(_GARBAGE.findall(sample)) > max(3, 0.02 * len(sample)):
        raise _undecodable("decoded text is full of control characters")
    return text


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Text from bytes: a BOM, then strict UTF-8, then a declared charset, then detection."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return _check_plausible(data.decode(codec))
            except UnicodeDecodeError as exc:
                raise _undecodable(f"invalid {codec} after byte-order mark") from exc
    try:
        return _check_plausible(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    if b"\x00" in data[:4096]:
        raise _undecodable("binary data (NUL bytes) in a text document")
    if declared:
        try:
            return _check_plausible(data.decode(declared))
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong declaration is common; detection below decides
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise _undecodable("no text encoding fits")
    return _check_plausible(str(best))


# --- whitespace ----------------------------------------------------------------------------------

_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
# Controls, zero-width characters and U+FFFD (what a decoder or parser leaves for bytes it could not read).
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b-\u200d\u2060\ufeff\ufffd]")
_SPACES = re.compile(r"[^\S\n]+")
_EDGE_SPACES = re.compile(r" ?\n ?")
_BLANK_RUNS = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFC text with control characters gone, space runs collapsed and at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAKS.sub("\n", text)
    text = _CONTROLS.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _EDGE_SPACES.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


# --- markdown ------------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FRONT_MATTER_KEYS = {"title": "title", "author": "author", "date": "published", "published": "published"}
_MARKDOWN_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, flags), repl)
    for p, flags, repl in [
        (r"^ {0,3}(```|~~~).*$", re.M, ""),  # code fences: keep the code, drop the fence lines
        (r"^ {0,3}\[[^\]]+\]:[ \t]+\S+.*$", re.M, ""),  # link reference definitions
        (r"!\[([^\]]*)\]\([^)]*\)", 0, r"\1"),  # images -> alt text
        (r"\[([^\]]+)\]\([^)]*\)", 0, r"\1"),  # inline links -> link text
        (r"\[([^\]]+)\]\[[^\]]*\]", 0, r"\1"),  # reference links -> link text
        (r"<(https?://[^>\s]+)>", 0, r"\1"),  # autolinks
        (r"</?[A-Za-z][^>\n]*>", 0, ""),  # inline HTML tags
        (r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.M, r"\1"),  # ATX headings
        (r"^ {0,3}([-*_=])(?:[ \t]*\1){2,}[ \t]*$", re.M, ""),  # rules and setext underlines
        (r"^(?: {0,3}>[ \t]?)+", re.M, ""),  # blockquotes
        (r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?", re.M, ""),  # list markers, task boxes
        (r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", 0, r"\2"),  # strong
        (r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])", 0, r"\1"),  # emphasis with *
        (r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)", 0, r"\1"),  # emphasis with _ (not snake_case)
        (r"~~(.+?)~~", 0, r"\1"),  # strikethrough
        (r"`+([^`\n]+?)`+", 0, r"\1"),  # inline code
        (
            r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$\n?",
            re.M,
            "",
        ),  # table rules
    ]
]


def split_front_matter(source: str) -> tuple[dict[str, str], str]:
    """YAML-style front matter as hints (title, author, published) and the body after it."""
    match = _FRONT_MATTER.match(source)
    if not match:
        return {}, source
    hints: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        hint = _FRONT_MATTER_KEYS.get(key.strip().lower())
        value = value.strip().strip("\"'").strip()
        if sep and hint and value and hint not in hints:
            hints[hint] = value
    return hints, source[match.end() :]


def strip_markdown(source: str) -> str:
    for pattern, replacement in _MARKDOWN_RULES:
        source = pattern.sub(replacement, source)
    return source


# --- HTML ----------------------------------------------------------------------------------------

_INVISIBLE = ("script", "style", "noscript", "template", "head", "svg", "iframe")
_BLOCKS = ("p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre")


def decode_html(data: bytes) -> str:
    match = _META_CHARSET.search(data[:4096])
    return decode_text(data, match.group(1).decode("ascii") if match else None)


_DEPTH = re.compile(r"Excessive depth in document: (\d+)")


def html_parser() -> lxml.html.HTMLParser:
    """The parser for a source's HTML: nothing fetched (no network, no external DTD), libxml2's size and depth
    limits kept (no huge_tree), so a hostile page meets the parser's own bounds first."""
    return lxml.html.HTMLParser(encoding="utf-8", no_network=True, huge_tree=False)


def parser_limit(parser: lxml.html.HTMLParser) -> str | None:
    """What limit the parser stopped at, in words, or None; libxml2 drops what lies beyond it silently."""
    for entry in parser.error_log:
        if entry.type_name != "ERR_RESOURCE_LIMIT":
            continue
        depth = _DEPTH.search(entry.message)
        if depth:
            return f"HTML nested deeper than {depth.group(1)} levels (the HTML parser's limit)"
        return f"the HTML parser stopped at one of its limits: {entry.message.strip()}"
    return None


def _visible_text(markup: str) -> tuple[str, str | None]:
    """All text a browser would show, for pages trafilatura finds no main content in (short notes), and the
    parser limit that cut the page short, if any."""
    parser = html_parser()
    try:
        # Bytes, because lxml refuses str input that carries an XML encoding declaration.
        tree = lxml.html.document_fromstring(markup.encode("utf-8"), parser=parser)
    except (lxml.etree.ParserError, ValueError):
        return "", parser_limit(parser)
    for element in list(tree.iter(*_INVISIBLE)):  # a list: dropping while iterating skips siblings
        element.drop_tree()
    for element in tree.iter(*_BLOCKS):
        element.tail = "\n" + (element.tail or "")
    return str(tree.text_content()), parser_limit(parser)


def html_text(markup: str) -> str:
    """The main text of a page; an empty page fails with what emptied it (a parser limit, or no text).

    trafilatura gets the markup as a string, which it only ever parses (it opens no file and fetches no URL
    named by it; tests/workers/test_untrusted_content.py holds it to that).
    """
    text = trafilatura.extract(
        markup, favor_precision=False, include_comments=False, include_tables=True, deduplicate=False
    )
    if text and text.strip():
        return text
    visible, limit = _visible_text(markup)
    if limit and not clean_text(visible):
        raise DocumentError(Stage.NORMALIZE, f"{limit}: no text could be read from it")
    return visible


# --- PDF -----------------------------------------------------------------------------------------

DEFAULT_MAX_PDF_PAGES = 500
PDF_NEEDS_PASSWORD = "encrypted with a password: the PDF cannot be opened without it"
PDF_WITHOUT_TEXT = "no extractable text (scanned PDF?): its pages hold no text layer"


def _pdf_date(value: Any) -> str | None:
    try:
        return value.isoformat() if value is not None else None
    except AttributeError:
        return None


def pdf_text(data: bytes, max_pages: int = DEFAULT_MAX_PDF_PAGES) -> tuple[str, dict[str, str]]:
    """Text of the first `max_pages` pages and the document-info hints (title, author, published).

    A PDF encrypted with an empty user password (common for "no printing" PDFs) opens like any other.
    """
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(Stage.NORMALIZE, PDF_NEEDS_PASSWORD)
        pages = [page.extract_text() or "" for page in itertools.islice(reader.pages, max_pages)]
        info = reader.metadata
        hints: dict[str, str] = {}
        if info is not None:
            candidates = {"title": info.title, "author": info.author}
            # An unparseable /CreationDate is not worth failing the document for.
            with contextlib.suppress(ValueError, TypeError):
                candidates["published"] = _pdf_date(info.creation_date)
            hints = {k: str(v).strip() for k, v in candidates.items() if v and str(v).strip()}
    except DocumentError:
        raise
    except pypdf.errors.FileNotDecryptedError as exc:
        raise DocumentError(Stage.NORMALIZE, PDF_NEEDS_PASSWORD) from exc
    except pypdf.errors.DependencyError as exc:  # the worker was installed without pypdf[crypto]
        raise DocumentError(Stage.NORMALIZE, f"encrypted PDF: cannot decrypt here: {exc}") from exc
    except Exception as exc:  # pypdf raises many exception types on damaged files
        raise DocumentError(Stage.NORMALIZE, f"corrupt PDF: {type(exc).__name__}: {exc}") from exc
    return "\n\n".join(pages), hints


# --- language and fingerprints -------------------------------------------------------------------

_language_model: LanguageIdentifier | None = None
_language_lock = threading.Lock()


def _identifier() -> Any:
    """The langid model, loaded once per process on first use (loading takes about half a second)."""
    global _language_model
    if _language_model is None:
        with _language_lock:
            if _language_model is None:
                _language_model = LanguageIdentifier.from_model_file(MODEL_FILE)
    return _language_model


def preload_language_model() -> None:
    """For process-pool initializers, so the first document does not pay for loading the model."""
    _identifier()


def detect_language(text: str) -> str:
    if len(text) < MIN_LANGUAGE_CHARS:
        return "und"
    language, _score = _identifier().classify(text[:LANGUAGE_SAMPLE_CHARS])
    return str(language)


_TOKENS = re.compile(r"\w+")
_P1 = np.uint64(0x9E3779B97F4A7C15)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """splitmix64 finalizer: spreads a combination of token hashes over all 64 bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def simhash(text: str) -> int:
    """64-bit simhash over lowercased word 3-shingles, as a signed int (fits a PostgreSQL BIGINT).

    Each distinct word is hashed once with blake2b (stable across processes, unlike hash()); shingle
    hashes are combined from word hashes with numpy, which keeps a 1,000-word document well under a ms.
    """
    tokens = _TOKENS.findall(text.lower())
    if not tokens:
        return 0
    vocabulary: dict[str, int] = {}
    ids = [vocabulary.setdefault(token, len(vocabulary)) for token in tokens]
    word_hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little") for w in vocabulary),
        dtype=np.uint64,
        count=len(vocabulary),
    )
    h = word_hashes[np.asarray(ids, dtype=np.intp)]
    shingles = _mix(h[:-2] * _P1 + h[1:-1] * _P2 + h[2:]) if len(h) >= 3 else _mix(h)
    bits = np.unpackbits(shingles.astype("<u8").view(np.uint8), bitorder="little").reshape(-1, 64)
    # A bit is set when more shingles have it set than not: the sign of the sum of +1/-1 votes.
    votes = bits.sum(axis=0, dtype=np.int64) * 2 > len(shingles)
    packed = np.packbits(votes.astype(np.uint8), bitorder="little").tobytes()
    return int.from_bytes(packed, "little", signed=True)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the stage -----------------------------------------------------------------------------------


def normalize(raw: RawDocument, *, max_pdf_pages: int = DEFAULT_MAX_PDF_PAGES) -> NormalizedDocument:
    content_type = raw.content_type.split(";", 1)[0].strip().lower()
    # Hints from the source (feeds) win over what the document says about itself.
    hints = dict(raw.hints)
    markup: str | None = None
    empty = "empty document"
    if content_type == "text/html":
        markup = decode_html(raw.data)
        text = html_text(markup)
        empty = "empty document: no text"
    elif content_type == "text/markdown":
        markup = decode_text(raw.data)  # kept so extract can find the first "# heading"
        declared, body = split_front_matter(markup)
        hints = {**declared, **hints}
        text = strip_markdown(body)
    elif content_type == "text/plain":
        text = decode_text(raw.data)
    elif content_type == "application/pdf":
        text, declared = pdf_text(raw.data, max_pdf_pages)
        hints = {**declared, **hints}
        empty = PDF_WITHOUT_TEXT
    else:
        raise DocumentError(Stage.NORMALIZE, f"unsupported content type {raw.content_type!r}")
    text = clean_text(text)
    if not text:
        raise DocumentError(Stage.NORMALIZE, empty)
    return NormalizedDocument(
        uri=raw.uri,
        content_type=content_type,
        text=text,
        language=detect_language(text),
        content_hash=content_hash(text),
        simhash=simhash(text),
        markup=markup,
        hints=hints,
    )
