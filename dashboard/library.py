"""The library's SQL: stored documents with their evaluation, searched and filtered, a page at a time or as
a CSV export read in chunks; and the filters' option lists by loose index scans.

Search is full text: every word of the query must occur in the title or the text, in any case; a word ending
in `*` also matches longer words ("ransom*" finds "ransomware"). It reads SQLite's FTS5 table `artifact_search` or PostgreSQL's
`artifacts.search` tsvector (GIN index), both kept by triggers (migration 0006). Results are ranked (title
matches weigh more: bm25 on SQLite, ts_rank on PostgreSQL) among the newest SEARCH_CAP matching documents, so
a query that matches half the library still costs a bounded read.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Select, and_, func, literal_column, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql import column, table

from core.vocabulary import ArtifactStatus
from dashboard import formatting
from dashboard.documents import seen_counts
from dashboard.queries import sqlite_backend
from data.models import Artifact, Evaluation, Source
from data.repository import day_bounds

EXPORT_CAP = 50_000  # rows in one CSV export
EXPORT_CHUNK = 5_000
COUNT_CAP = 100_000  # counting matches stops here: "100,000+" is as useful as the exact figure
SEARCH_CAP = 5_000  # a search ranks (and counts) at most this many of the newest matching documents
MAX_TERMS = 12


@dataclass(frozen=True)
class LibraryFilter:
    search: str = ""
    source_id: int | None = None
    label: str | None = None
    min_relevance: float | None = None  # the evaluator's relevance, 0..1
    language: str | None = None
    stored_from: date | None = None
    stored_to: date | None = None  # inclusive
    zone: str = "UTC"  # whose calendar days stored_from and stored_to are
    presence: str = "all"  # PRESENCES: every document, only those the source still has, or only gone ones


PRESENT, GONE = "present", "gone"
PRESENCES = ("all", PRESENT, GONE)


def day_start(day: date, zone: str) -> datetime:
    """The UTC instant a calendar day of `zone` starts (the Library's and the Audit log's date filters)."""
    start, _ = day_bounds(day, zone)
    return start


def search_terms(search: str) -> list[str]:
    """The words of a search box entry (letters and digits; punctuation separates words), lower-cased; a
    word may end in `*` (a prefix). Whole words are the default: a prefix of a common word expands to a long
    list of documents before the first one is ranked."""
    return re.findall(r"\w+\*?", search.lower())[:MAX_TERMS]


def _fts5_query(terms: list[str]) -> str:
    # \w+ words hold no quote; all must match
    return " ".join(f'"{t[:-1]}"*' if t.endswith("*") else f'"{t}"' for t in terms)


def _tsquery(terms: list[str]) -> ColumnElement[Any]:
    return func.to_tsquery("simple", " & ".join(f"{t[:-1]}:*" if t.endswith("*") else t for t in terms))


ARTIFACT_SEARCH = table("artifact_search", column("rowid"))  # SQLite's FTS5 index (not an ORM model)
SQLITE_SCORE = "-bm25(artifact_search, 10.0, 1.0)"  # bm25 is lower for better matches; a title weighs 10x
SQLITE_MATCH = "artifact_search MATCH :fts"


def _library_select(
    session: Session, columns: list[Any], f: LibraryFilter, *, ranked: bool = False, ids_only: bool = False
) -> Select[Any]:
    """The filtered stored documents; with a search, only matching ones (and a `score` column if ranked).

    `ids_only` (columns of artifacts alone, for counting) joins only what a filter needs: counting 100,000
    rows through two joins each is what made the unfiltered count slow on PostgreSQL.
    """
    terms = search_terms(f.search)
    sqlite = sqlite_backend(session)
    if terms and sqlite:
        stmt = (
            select(*columns, *([literal_column(SQLITE_SCORE).label("score")] if ranked else []))
            .select_from(ARTIFACT_SEARCH)
            .join(Artifact, Artifact.id == ARTIFACT_SEARCH.c.rowid)
            .where(text(SQLITE_MATCH).bindparams(fts=_fts5_query(terms)))
        )
    else:
        stmt = select(*columns).select_from(Artifact)
        if terms:
            vector: ColumnElement[Any] = literal_column("artifacts.search")  # not mapped: PostgreSQL only
            query = _tsquery(terms)
            stmt = stmt.where(vector.op("@@")(query))
            if ranked:
                stmt = stmt.add_columns(func.ts_rank(vector, query).label("score"))
    if not ids_only:
        stmt = stmt.join(Source, Source.id == Artifact.source_id)
    if not ids_only or f.label is not None or f.min_relevance is not None:
        stmt = stmt.outerjoin(Evaluation, Evaluation.artifact_id == Artifact.id)
    # a stored document always has stored_at; saying so lets PostgreSQL's newest-first index scan skip the
    # NULLs of failed documents (a backward scan meets them first) instead of reading past them
    stmt = stmt.where(Artifact.status == ArtifactStatus.STORED, Artifact.stored_at.is_not(None))
    # each content once: a stored exact duplicate of another stored document (another source's copy) is
    # listed with its original, on the original's document page
    stmt = stmt.where(Artifact.duplicate_of_id.is_(None))
    if f.source_id is not None:
        stmt = stmt.where(Artifact.source_id == f.source_id)
    if f.label is not None:
        stmt = stmt.where(Evaluation.label == f.label)
    if f.min_relevance is not None:
        stmt = stmt.where(Evaluation.relevance >= f.min_relevance)
    if f.language is not None:
        stmt = stmt.where(Artifact.language == f.language)
    if f.presence == PRESENT:
        stmt = stmt.where(Artifact.gone_at.is_(None))
    elif f.presence == GONE:
        stmt = stmt.where(Artifact.gone_at.is_not(None))
    if f.stored_from is not None:
        stmt = stmt.where(Artifact.stored_at >= day_start(f.stored_from, f.zone))
    if f.stored_to is not None:
        stmt = stmt.where(Artifact.stored_at < day_start(f.stored_to + timedelta(days=1), f.zone))
    return stmt


def _newest_matches(session: Session, f: LibraryFilter, *, limit: int, ranked: bool = True) -> Any:
    """Subquery (id, score if ranked) of the newest `limit` documents matching a search and the filters."""
    newest = ARTIFACT_SEARCH.c.rowid if sqlite_backend(session) else Artifact.id
    return (
        _library_select(session, [Artifact.id.label("id")], f, ranked=ranked, ids_only=True)
        .order_by(newest.desc())
        .limit(limit)
        .subquery("matches")
    )


def library_count(session: Session, f: LibraryFilter, *, cap: int | None = None) -> tuple[int, bool]:
    """(matching documents, whether the count stopped at `cap`): counting stops early on huge matches, at
    COUNT_CAP, or at SEARCH_CAP for a search (the documents a search ranks)."""
    if cap is None:
        cap = SEARCH_CAP if search_terms(f.search) else COUNT_CAP
    if search_terms(f.search):
        inner = _newest_matches(session, f, limit=cap + 1, ranked=False)
    else:
        inner = _library_select(session, [Artifact.id], f, ids_only=True).limit(cap + 1).subquery()
    n = int(session.scalar(select(func.count()).select_from(inner)) or 0)
    return min(n, cap), n > cap


LIBRARY_COLUMNS = [
    "stored",
    "title",
    "source",
    "label",
    "decided by",
    "evaluator said",
    "confidence",
    "relevance",
    "credibility",
    "rationale",
    "evaluator",
    "topics version",
    "language",
    "published",
    "uri",
    "gone since",  # when a refresh found the source no longer has the document (it stays in the library)
    "id",
]


def _library_columns() -> list[Any]:
    return [
        Artifact.stored_at,
        Artifact.title,
        Source.name,
        Evaluation.label,
        # a person who reviewed the verdict, else the evaluator that made it
        func.coalesce(Evaluation.reviewed_by, Evaluation.evaluator),
        func.coalesce(Evaluation.model_label, Evaluation.label),
        Evaluation.confidence,
        Evaluation.relevance,
        Evaluation.credibility,
        Evaluation.rationale,
        Evaluation.evaluator,
        Evaluation.topics_version,
        Artifact.language,
        Artifact.published_at,
        Artifact.uri,
        Artifact.gone_at,
        Artifact.id,
    ]


def library_page(session: Session, f: LibraryFilter, *, limit: int = 50, offset: int = 0) -> pd.DataFrame:
    """One page of stored documents: the best matches first for a search (among the newest SEARCH_CAP
    matches), else newest first; each with how often its content was seen, first and last."""
    columns = [*_library_columns(), Artifact.content_hash]
    if search_terms(f.search):
        matches = _newest_matches(session, f, limit=SEARCH_CAP)
        stmt = (
            select(*columns)
            .select_from(matches)
            .join(Artifact, Artifact.id == matches.c.id)
            .join(Source, Source.id == Artifact.source_id)
            .outerjoin(Evaluation, Evaluation.artifact_id == Artifact.id)
            .order_by(matches.c.score.desc(), Artifact.id.desc())
        )
    else:
        stmt = _library_select(session, columns, f).order_by(Artifact.stored_at.desc(), Artifact.id.desc())
    stmt = stmt.limit(limit).offset(offset)
    frame = pd.DataFrame([list(r) for r in session.execute(stmt)], columns=[*LIBRARY_COLUMNS, "hash"])
    for score in ("confidence", "relevance", "credibility"):
        frame[score] = frame[score].astype("float64").round(3)
    seen = seen_counts(session, [h for h in frame["hash"] if h])
    frame["seen"] = pd.array([seen[h][0] if h in seen else 1 for h in frame["hash"]], dtype="Int64")
    frame["first seen"] = [seen[h][1] if h in seen else None for h in frame["hash"]]
    frame["last seen"] = [seen[h][2] if h in seen else None for h in frame["hash"]]
    frame["open"] = [f"{DOCUMENT_URL}?doc={i}" for i in frame["id"]]
    return frame.drop(columns=["hash"])


DOCUMENT_URL = "document"  # the document page's URL path (pages/document.py), relative to the app
PAGE_COLUMNS = [*LIBRARY_COLUMNS, "seen", "first seen", "last seen", "open"]


def library_csv(
    session: Session,
    f: LibraryFilter,
    *,
    cap: int = EXPORT_CAP,
    chunk: int = EXPORT_CHUNK,
    with_text: bool = False,
) -> str:
    """The filtered library as CSV, newest first, at most `cap` rows, read in keyset-paged chunks; with the
    documents' text as a last column when asked (only for people who may see text: the page checks). Times
    are ISO 8601 in the filter's zone, with their offset."""
    out = io.StringIO()
    for part in library_csv_chunks(session, f, cap=cap, chunk=chunk, with_text=with_text):
        out.write(part)
    return out.getvalue()


def library_csv_chunks(
    session: Session,
    f: LibraryFilter,
    *,
    cap: int = EXPORT_CAP,
    chunk: int = EXPORT_CHUNK,
    with_text: bool = False,
) -> Iterator[str]:
    header = io.StringIO()
    csv.writer(header).writerow([*LIBRARY_COLUMNS, *(["text"] if with_text else [])])
    columns = [*_library_columns(), *([Artifact.text] if with_text else [])]
    yield header.getvalue()
    written = 0
    after: tuple[datetime, int] | None = None
    while written < cap:
        stmt = _library_select(session, columns, f)
        if after is not None:
            stored_at, artifact_id = after
            stmt = stmt.where(
                or_(
                    Artifact.stored_at < stored_at,
                    and_(Artifact.stored_at == stored_at, Artifact.id < artifact_id),
                )
            )
        size = min(chunk, cap - written)
        rows = list(session.execute(stmt.order_by(Artifact.stored_at.desc(), Artifact.id.desc()).limit(size)))
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in rows:
            writer.writerow(_csv_cell(v, f.zone) for v in row)
        yield buffer.getvalue()
        written += len(rows)
        last = rows[-1]
        after = (last[0], last[LIBRARY_COLUMNS.index("id")])
        if len(rows) < size:
            return


# Cells a spreadsheet may read as a formula (OWASP CSV injection): =, +, -, @, and a leading tab or carriage
# return, which some spreadsheets skip before looking for one of the others.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any, zone: str | None = None) -> Any:
    """A cell as CSV writes it: a time in ISO 8601 (moved to `zone` when given), a formula-like text quoted."""
    if isinstance(value, datetime):
        return (value.astimezone(formatting.zone(zone)) if zone else value).isoformat()
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value  # a spreadsheet must not run a document's title as a formula
    return value


def distinct_values(session: Session, table: str, column: str) -> list[str]:
    """Distinct non-null values of an indexed column by a loose index scan (a few index seeks, not a scan)."""
    sql = text(
        f"""
        WITH RECURSIVE v(x) AS (
            SELECT min({column}) FROM {table}
            UNION ALL
            SELECT (SELECT min({column}) FROM {table} WHERE {column} > v.x) FROM v WHERE v.x IS NOT NULL
        )
        SELECT x FROM v WHERE x IS NOT NULL LIMIT 1000
        """
    )
    return [str(x) for (x,) in session.execute(sql)]


def library_labels(session: Session) -> list[str]:
    return distinct_values(session, "evaluations", "label")


def library_languages(session: Session) -> list[str]:
    return distinct_values(session, "artifacts", "language")
