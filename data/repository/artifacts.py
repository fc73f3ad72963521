"""Artifacts and evaluations: bulk inserts and updates keyed by (batch, sequence), library matches, counts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session, undefer

from core.vocabulary import ARTIFACT_DONE, ArtifactStatus
from data.models import Artifact, Evaluation
from data.repository._base import _insert

# --- artifacts -----------------------------------------------------------------------------------------


def insert_artifacts(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ingested artifacts; rows already present for (batch_id, seq) are left as they are."""
    if not rows:
        return
    stmt = _insert(session)(Artifact).on_conflict_do_nothing(index_elements=["batch_id", "seq"])
    session.execute(stmt, list(rows))


def load_artifacts(
    session: Session, *, batch_id: int, start_seq: int, end_seq: int, status: str, with_raw: bool = False
) -> list[Artifact]:
    """Artifacts of one chunk [start_seq, end_seq) in one status, in seq order."""
    options = [undefer(Artifact.raw), undefer(Artifact.hints)] if with_raw else [undefer(Artifact.text)]
    stmt = (
        select(Artifact)
        .options(*options)
        .where(
            Artifact.batch_id == batch_id,
            Artifact.seq >= start_seq,
            Artifact.seq < end_seq,
            Artifact.status == status,
        )
        .order_by(Artifact.seq)
    )
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class LibraryRow:
    artifact_id: int
    content_hash: str
    simhash: int


def find_library_matches(
    session: Session, *, content_hashes: Iterable[str], bands: Sequence[Iterable[int]]
) -> list[LibraryRow]:
    """Processed or stored artifacts sharing a content hash or a simhash band with the given documents."""
    hashes = sorted(set(content_hashes))
    conditions = [Artifact.content_hash.in_(hashes)] if hashes else []
    band_columns = (
        Artifact.simhash_band0,
        Artifact.simhash_band1,
        Artifact.simhash_band2,
        Artifact.simhash_band3,
    )
    for column, values in zip(band_columns, bands, strict=True):
        vals = sorted(set(values))
        if vals:
            conditions.append(column.in_(vals))
    if not conditions:
        return []
    stmt = select(Artifact.id, Artifact.content_hash, Artifact.simhash).where(
        Artifact.status.in_((ArtifactStatus.PROCESSED, ArtifactStatus.STORED)), or_(*conditions)
    )
    return [LibraryRow(i, h, s) for i, h, s in session.execute(stmt) if h is not None and s is not None]


def stored_by_source(
    session: Session, *, source_id: int, other_than_batch: int, content_hashes: Iterable[str]
) -> dict[str, int]:
    """Content hash -> the first artifact storing it, among the source's stored artifacts of other batches."""
    hashes = sorted(set(content_hashes))
    if not hashes:
        return {}
    stmt = (
        select(Artifact.content_hash, func.min(Artifact.id))
        .where(
            Artifact.source_id == source_id,
            Artifact.batch_id != other_than_batch,
            Artifact.status == ArtifactStatus.STORED,
            Artifact.content_hash.in_(hashes),
        )
        .group_by(Artifact.content_hash)
    )
    return {h: int(i) for h, i in session.execute(stmt) if h is not None}


def drop_raw(session: Session, *, artifact_ids: Sequence[int]) -> None:
    """Forget the raw bytes of these artifacts (stored or unchanged: no stage reads them again)."""
    if artifact_ids:
        session.execute(update(Artifact).where(Artifact.id.in_(list(artifact_ids))).values(raw=None))


def update_artifacts(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk UPDATE by primary key: every row carries "id" and the columns to set."""
    if rows:
        session.execute(update(Artifact), list(rows))


def upsert_evaluations(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Store evaluations; running twice for the same artifact keeps one row with the latest verdict.

    The evaluator's label always goes to `model_label`; it becomes the shown `label` (and sets `needs_review`)
    only while no person has reviewed the document: a re-evaluation never overwrites a person's decision.
    """
    if not rows:
        return
    rows = [
        {**r, "model_label": r["label"], "needs_review": bool(r.get("needs_review", r["label"] == "review"))}
        for r in rows
    ]
    ins = _insert(session)(Evaluation)
    unreviewed = Evaluation.reviewed_at.is_(None)
    set_: dict[str, Any] = {
        col: getattr(ins.excluded, col)
        for col in (
            "confidence",
            "relevance",
            "credibility",
            "rationale",
            "evaluator",
            "model",
            "topics_version",
            "model_label",
            "reevaluation_id",
            "tokens",
        )
        if col in rows[0]  # callers that predate a column leave it as it is
    }
    for col in ("label", "needs_review"):
        set_[col] = case((unreviewed, getattr(ins.excluded, col)), else_=getattr(Evaluation, col))
    session.execute(ins.on_conflict_do_update(index_elements=["artifact_id"], set_=set_), rows)


def count_stored_since(session: Session, *, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Artifact.status == ArtifactStatus.STORED, Artifact.stored_at >= since)
        )
        or 0
    )


def batch_stage_timings(session: Session, *, batch_id: int) -> dict[str, float | None]:
    """Mean milliseconds per stage over a batch's artifacts."""
    cols = ("ingest_ms", "normalize_ms", "extract_ms", "clarify_ms", "evaluate_ms", "store_ms")
    row = session.execute(
        select(*(func.avg(getattr(Artifact, c)) for c in cols)).where(Artifact.batch_id == batch_id)
    ).one()
    return {c: (None if v is None else float(v)) for c, v in zip(cols, row, strict=True)}


def batch_progress(session: Session, *, batch_id: int) -> tuple[int, int]:
    """(done, total) for a batch: done counts stored, failed and unchanged artifacts."""
    done, total = session.execute(
        select(
            func.coalesce(func.sum(case((Artifact.status.in_(ARTIFACT_DONE), 1), else_=0)), 0),
            func.count(),
        ).where(Artifact.batch_id == batch_id)
    ).one()
    return int(done), int(total)
