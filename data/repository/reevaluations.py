"""Re-evaluations: which stored documents a re-run judges again (a scope), its row with progress, and the pages
of documents it works through, keyset-paged by id so a re-run after a crash goes on where it stopped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session, undefer

from core.vocabulary import ArtifactStatus
from data.models import Artifact, Evaluation, Reevaluation, utcnow

REEVALUATION_RUNNING = "running"


@dataclass(frozen=True)
class ReevaluationScope:
    """Stored documents of one source and/or batch, with one label, or only those judged against other topics
    or another model than today's (stale); empty means the whole library."""

    source_id: int | None = None
    batch_id: int | None = None
    label: str | None = None
    stale_only: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReevaluationScope:
        return cls(
            **{k: data.get(k) for k in ("source_id", "batch_id", "label")},
            stale_only=bool(data.get("stale_only")),
        )


def _in_scope(columns: Sequence[Any], scope: ReevaluationScope, topics_version: str | None) -> Select[Any]:
    stmt = (
        select(*columns)
        .select_from(Artifact)
        .join(Evaluation, Evaluation.artifact_id == Artifact.id)
        .where(Artifact.status == ArtifactStatus.STORED)
    )
    if scope.source_id is not None:
        stmt = stmt.where(Artifact.source_id == scope.source_id)
    if scope.batch_id is not None:
        stmt = stmt.where(Artifact.batch_id == scope.batch_id)
    if scope.label is not None:
        stmt = stmt.where(Evaluation.label == scope.label)
    if scope.stale_only:
        stmt = stmt.where(
            or_(Evaluation.topics_version.is_(None), Evaluation.topics_version != topics_version)
        )
    return stmt


def count_in_scope(session: Session, scope: ReevaluationScope, *, topics_version: str | None) -> int:
    return int(session.execute(_in_scope([func.count()], scope, topics_version)).scalar_one())


def scope_text_chars(session: Session, scope: ReevaluationScope, *, topics_version: str | None) -> int:
    """Characters of text in scope (the basis of a token estimate where no model has reported tokens yet)."""
    stmt = _in_scope([func.coalesce(func.sum(func.length(Artifact.text)), 0)], scope, topics_version)
    return int(session.execute(stmt).scalar_one() or 0)


def mean_tokens(session: Session, *, evaluator: str) -> float | None:
    """Tokens per document the evaluator's API reported so far (None before any)."""
    stmt = select(func.avg(Evaluation.tokens)).where(
        Evaluation.evaluator == evaluator, Evaluation.tokens.is_not(None)
    )
    value = session.execute(stmt).scalar_one()
    return float(value) if value is not None else None


def create_reevaluation(
    session: Session,
    *,
    scope: ReevaluationScope,
    description: str,
    total: int,
    evaluator: str,
    model: str | None,
    topics_version: str | None,
    started_by: str,
    reason: str | None,
) -> Reevaluation:
    row = Reevaluation(
        scope=scope.as_dict(),
        description=description,
        status=REEVALUATION_RUNNING,
        total=total,
        done=0,
        tokens=0,
        evaluator=evaluator,
        model=model,
        topics_version=topics_version,
        started_by=started_by,
        reason=reason,
    )
    session.add(row)
    session.flush()
    return row


def get_reevaluation(session: Session, *, reevaluation_id: int) -> Reevaluation | None:
    return session.get(Reevaluation, reevaluation_id)


def running_reevaluations(session: Session) -> list[Reevaluation]:
    return list(
        session.execute(select(Reevaluation).where(Reevaluation.status == REEVALUATION_RUNNING)).scalars()
    )


def list_reevaluations(session: Session, *, limit: int = 20) -> list[Reevaluation]:
    stmt = select(Reevaluation).order_by(Reevaluation.id.desc()).limit(limit)
    return list(session.execute(stmt).scalars())


def next_page(session: Session, *, reevaluation: Reevaluation, after_id: int, limit: int) -> list[Artifact]:
    """The next documents in scope that this re-evaluation has not judged yet (text loaded), by id."""
    scope = ReevaluationScope.from_dict(reevaluation.scope)
    stmt = (
        _in_scope([Artifact], scope, reevaluation.topics_version)
        .where(
            Artifact.id > after_id,
            or_(Evaluation.reevaluation_id.is_(None), Evaluation.reevaluation_id != reevaluation.id),
        )
        .options(undefer(Artifact.text))
        .order_by(Artifact.id)
        .limit(limit)
    )
    return list(session.execute(stmt).scalars())


def add_progress(session: Session, *, reevaluation_id: int, done: int, tokens: int) -> None:
    session.execute(
        update(Reevaluation)
        .where(Reevaluation.id == reevaluation_id)
        .values(done=Reevaluation.done + done, tokens=Reevaluation.tokens + tokens)
    )


def finish_reevaluation(
    session: Session, *, reevaluation_id: int, status: str, at: datetime | None = None
) -> None:
    """End it once: a retried activity after the end changes nothing."""
    session.execute(
        update(Reevaluation)
        .where(Reevaluation.id == reevaluation_id, Reevaluation.status == REEVALUATION_RUNNING)
        .values(status=status, finished_at=at or utcnow())
    )


def set_reevaluation_workflow(session: Session, *, reevaluation_id: int, workflow_id: str) -> None:
    session.execute(
        update(Reevaluation).where(Reevaluation.id == reevaluation_id).values(workflow_id=workflow_id)
    )


def count_reviewed_in_scope(session: Session, scope: ReevaluationScope, *, topics_version: str | None) -> int:
    stmt = _in_scope([func.count()], scope, topics_version).where(Evaluation.reviewed_at.is_not(None))
    return int(session.execute(stmt).scalar_one() or 0)


def batch_tokens(session: Session, *, batch_id: int) -> int:
    """Tokens a model evaluator's API reported for the batch's documents (their latest verdicts)."""
    stmt = (
        select(func.coalesce(func.sum(Evaluation.tokens), 0))
        .join(Artifact, Artifact.id == Evaluation.artifact_id)
        .where(Artifact.batch_id == batch_id)
    )
    return int(session.execute(stmt).scalar_one() or 0)


def tokens_since(session: Session, *, since: datetime) -> tuple[int, int]:
    """(tokens of verdicts first made since `since`, tokens of re-evaluations started since then)."""
    pipeline = select(func.coalesce(func.sum(Evaluation.tokens), 0)).where(Evaluation.created_at >= since)
    again = select(func.coalesce(func.sum(Reevaluation.tokens), 0)).where(Reevaluation.created_at >= since)
    return int(session.execute(pipeline).scalar_one() or 0), int(session.execute(again).scalar_one() or 0)
