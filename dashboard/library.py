"""The library's SQL: stored documents with their evaluation, searched and filtered, a page at a time or as
a CSV export read in chunks; and the filters' option lists by loose index scans."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Select, and_, func, or_, select, text
from sqlalchemy.orm import Session

from dashboard.queries import sqlite_backend
from data.models import ARTIFACT_STORED, Artifact, Evaluation, Source

EXPORT_CAP = 50_000  # rows in one CSV export
EXPORT_CHUNK = 5_000
COUNT_CAP = 100_000  # counting matches stops here: "100,000+" is as useful as the exact figure


@dataclass(frozen=True)
class LibraryFilter:
    search: str = ""
    source_id: int | None = None
    label: str | None = None
    language: str | None = None
    stored_from: date | None = None
    stored_to: date | None = None  # inclusive


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _library_select(session: Session, columns: list[Any], f: LibraryFilter) -> Select[Any]:
    stmt = (
        select(*columns)
        .select_from(Artifact)
        .join(Source, Source.id == Artifact.source_id)
        .outerjoin(Evaluation, Evaluation.artifact_id == Artifact.id)
        .where(Artifact.status == ARTIFACT_STORED)
    )
    if f.source_id is not None:
        stmt = stmt.where(Artifact.source_id == f.source_id)
    if f.label is not None:
        stmt = stmt.where(Evaluation.label == f.label)
    if f.language is not None:
        stmt = stmt.where(Artifact.language == f.language)
    if f.stored_from is not None:
        stmt = stmt.where(Artifact.stored_at >= _day_start(f.stored_from))
    if f.stored_to is not None:
        stmt = stmt.where(Artifact.stored_at < _day_start(f.stored_to + timedelta(days=1)))
    term = f.search.strip()
    if term:
        pattern = _like_pattern(term)
        if sqlite_backend(session):  # SQLite's LIKE is already case-insensitive for ASCII
            stmt = stmt.where(
                or_(Artifact.title.like(pattern, escape="\\"), Artifact.text.like(pattern, escape="\\"))
            )
        else:
            stmt = stmt.where(
                or_(Artifact.title.ilike(pattern, escape="\\"), Artifact.text.ilike(pattern, escape="\\"))
            )
    return stmt


def library_count(session: Session, f: LibraryFilter, *, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """(matching documents, whether the count stopped at `cap`): counting stops early on huge matches."""
    inner = _library_select(session, [Artifact.id], f).limit(cap + 1).subquery()
    n = int(session.scalar(select(func.count()).select_from(inner)) or 0)
    return min(n, cap), n > cap


LIBRARY_COLUMNS = [
    "stored",
    "title",
    "source",
    "label",
    "confidence",
    "rationale",
    "language",
    "published",
    "uri",
    "id",
]


def _library_columns() -> list[Any]:
    return [
        Artifact.stored_at,
        Artifact.title,
        Source.name,
        Evaluation.label,
        Evaluation.confidence,
        Evaluation.rationale,
        Artifact.language,
        Artifact.published_at,
        Artifact.uri,
        Artifact.id,
    ]


def library_page(session: Session, f: LibraryFilter, *, limit: int = 50, offset: int = 0) -> pd.DataFrame:
    """One page of stored documents, newest first."""
    stmt = (
        _library_select(session, _library_columns(), f)
        .order_by(Artifact.stored_at.desc(), Artifact.id.desc())
        .limit(limit)
        .offset(offset)
    )
    frame = pd.DataFrame([list(r) for r in session.execute(stmt)], columns=LIBRARY_COLUMNS)
    frame["confidence"] = frame["confidence"].astype("float64").round(3)
    return frame


def library_csv(
    session: Session, f: LibraryFilter, *, cap: int = EXPORT_CAP, chunk: int = EXPORT_CHUNK
) -> str:
    """The filtered library as CSV, newest first, at most `cap` rows, read in keyset-paged chunks."""
    out = io.StringIO()
    for part in library_csv_chunks(session, f, cap=cap, chunk=chunk):
        out.write(part)
    return out.getvalue()


def library_csv_chunks(
    session: Session, f: LibraryFilter, *, cap: int = EXPORT_CAP, chunk: int = EXPORT_CHUNK
) -> Iterator[str]:
    header = io.StringIO()
    csv.writer(header).writerow(LIBRARY_COLUMNS)
    yield header.getvalue()
    written = 0
    after: tuple[datetime, int] | None = None
    while written < cap:
        stmt = _library_select(session, _library_columns(), f)
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
            writer.writerow(_csv_cell(v) for v in row)
        yield buffer.getvalue()
        written += len(rows)
        last = rows[-1]
        after = (last[0], last[-1])
        if len(rows) < size:
            return


def _csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    # A spreadsheet must not run a document's title as a formula; tab and CR lead into one as well (OWASP).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
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
