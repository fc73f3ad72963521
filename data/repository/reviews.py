"""The review inbox: verdicts a person should look at, a person's decisions on them, and how often people
override each evaluator (agreement)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from core.vocabulary import ArtifactStatus
from data.models import Artifact, Evaluation, Source, utcnow

# Why a document is in the inbox, as the page shows it.
WHY_REVIEW = "the evaluator was in doubt"
WHY_UNSURE = "the evaluator was unsure"
WHY_REPORTED = "a reader reported it"
REASONS = ("review", "unsure", "reported")


@dataclass(frozen=True)
class ReviewFilter:
    """Which waiting documents: every one, or those of one source, one reason, one evaluator label."""

    source_id: int | None = None
    reason: str | None = None  # review | unsure | reported
    model_label: str | None = None


@dataclass(frozen=True)
class ReviewItem:
    artifact_id: int
    title: str | None
    uri: str
    source_id: int
    source_name: str
    model_label: str
    relevance: float | None
    confidence: float
    rationale: str
    evaluator: str
    evaluated_at: datetime
    reported_by: str | None
    report_note: str | None

    @property
    def why(self) -> str:
        if self.reported_by:
            return WHY_REPORTED
        return WHY_REVIEW if self.model_label == "review" else WHY_UNSURE


def _waiting(columns: Sequence[Any], f: ReviewFilter) -> Select[Any]:
    stmt = (
        select(*columns)
        .select_from(Evaluation)
        .join(Artifact, Artifact.id == Evaluation.artifact_id)
        .where(Evaluation.needs_review.is_(True), Artifact.status == ArtifactStatus.STORED)
    )
    if f.source_id is not None:
        stmt = stmt.where(Artifact.source_id == f.source_id)
    if f.model_label is not None:
        stmt = stmt.where(Evaluation.model_label == f.model_label)
    if f.reason == "reported":
        stmt = stmt.where(Evaluation.reported_at.is_not(None))
    elif f.reason == "review":
        stmt = stmt.where(Evaluation.reported_at.is_(None), Evaluation.model_label == "review")
    elif f.reason == "unsure":
        stmt = stmt.where(Evaluation.reported_at.is_(None), Evaluation.model_label != "review")
    return stmt


def count_waiting(session: Session, f: ReviewFilter = ReviewFilter()) -> int:
    return int(session.execute(_waiting([func.count()], f)).scalar_one())


def waiting_ids(session: Session, f: ReviewFilter, *, limit: int) -> list[int]:
    stmt = _waiting([Evaluation.artifact_id], f).order_by(Evaluation.created_at, Evaluation.artifact_id)
    return [int(i) for i in session.execute(stmt.limit(limit)).scalars()]


def waiting(
    session: Session, f: ReviewFilter = ReviewFilter(), *, limit: int = 50, offset: int = 0
) -> list[ReviewItem]:
    """Oldest first: the one waiting longest is the next to decide."""
    stmt = (
        _waiting(
            [
                Artifact.id,
                Artifact.title,
                Artifact.uri,
                Artifact.source_id,
                Source.name,
                func.coalesce(Evaluation.model_label, Evaluation.label),
                Evaluation.relevance,
                Evaluation.confidence,
                Evaluation.rationale,
                Evaluation.evaluator,
                Evaluation.created_at,
                Evaluation.reported_by,
                Evaluation.report_note,
            ],
            f,
        )
        .join(Source, Source.id == Artifact.source_id)
        .order_by(Evaluation.created_at, Evaluation.artifact_id)
        .limit(limit)
        .offset(offset)
    )
    return [ReviewItem(*row) for row in session.execute(stmt)]


def oldest_waiting(session: Session) -> datetime | None:
    return session.execute(_waiting([func.min(Evaluation.created_at)], ReviewFilter())).scalar_one()


def count_overdue(session: Session, *, older_than: datetime) -> int:
    stmt = _waiting([func.count()], ReviewFilter()).where(Evaluation.created_at < older_than)
    return int(session.execute(stmt).scalar_one())


def model_labels(session: Session, *, artifact_ids: Sequence[int]) -> dict[int, str]:
    stmt = select(Evaluation.artifact_id, func.coalesce(Evaluation.model_label, Evaluation.label)).where(
        Evaluation.artifact_id.in_(list(artifact_ids))
    )
    return {int(a): str(label) for a, label in session.execute(stmt)}


def record_review(
    session: Session,
    *,
    labels: dict[int, str],
    actor: str,
    reason: str | None,
    now: datetime | None = None,
) -> int:
    """Set each document's label to a person's choice; the evaluator's verdict stays in `model_label`."""
    now = now or utcnow()
    done = 0
    by_label: dict[str, list[int]] = {}
    for artifact_id, label in labels.items():
        by_label.setdefault(label, []).append(artifact_id)
    for label, ids in by_label.items():
        result = session.execute(
            update(Evaluation)
            .where(Evaluation.artifact_id.in_(ids))
            .values(
                label=label,
                needs_review=False,
                reviewed_by=actor,
                reviewed_at=now,
                review_reason=reason,
            )
            .execution_options(synchronize_session=False)
        )
        done += int(getattr(result, "rowcount", 0) or 0)
    return done


def record_report(
    session: Session, *, artifact_id: int, actor: str, note: str, now: datetime | None = None
) -> bool:
    """A reader says the verdict looks wrong: the document goes (back) to the inbox."""
    result = session.execute(
        update(Evaluation)
        .where(Evaluation.artifact_id == artifact_id)
        .values(needs_review=True, reported_by=actor, reported_at=now or utcnow(), report_note=note)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True)
class AgreementRow:
    evaluator: str
    source_name: str
    week: str  # ISO week start, YYYY-MM-DD
    reviewed: int
    overridden: int


def agreement(session: Session, *, since: datetime, zone: str = "UTC") -> list[AgreementRow]:
    """Reviews since `since` per evaluator, source and week (Monday to Sunday in `zone`): how many, and how
    many changed the evaluator's label."""
    stmt = (
        select(
            Evaluation.evaluator,
            Source.name,
            Evaluation.reviewed_at,
            Evaluation.label,
            Evaluation.model_label,
        )
        .join(Artifact, Artifact.id == Evaluation.artifact_id)
        .join(Source, Source.id == Artifact.source_id)
        .where(Evaluation.reviewed_at.is_not(None), Evaluation.reviewed_at >= since)
    )
    # Counted here, not in SQL: the week is a calendar computation the two databases spell differently, and
    # reviews are people's work (thousands, not millions).
    counts: dict[tuple[str, str, str], list[int]] = {}
    for evaluator, source, reviewed_at, label, model_label in session.execute(stmt):
        if reviewed_at is None:
            continue
        day = reviewed_at.astimezone(ZoneInfo(zone)).date()
        week = day.fromordinal(day.toordinal() - day.weekday()).isoformat()
        entry = counts.setdefault((evaluator, source, week), [0, 0])
        entry[0] += 1
        entry[1] += int(model_label is not None and label != model_label)
    return [AgreementRow(e, s, w, n, o) for (e, s, w), (n, o) in sorted(counts.items())]


__all__ = [
    "REASONS",
    "AgreementRow",
    "ReviewFilter",
    "ReviewItem",
    "agreement",
    "count_overdue",
    "count_waiting",
    "model_labels",
    "oldest_waiting",
    "record_report",
    "record_review",
    "waiting",
    "waiting_ids",
]
