"""Failed batches awaiting an operator's decision: what to show for each, and sending the decision.

Reads are plain (no cache): a decision must show at once. Decisions themselves are operations
(operations/batches.py): the page calls them, and the workflow records each decision and its audit event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.vocabulary import ARTIFACT_FAILED
from data import repository
from data.models import Artifact, Batch, Source, utcnow

DECISION_TIMEOUT = 15.0  # seconds for one Update, SDK retries included


def waiting(session: Session) -> list[repository.BatchRow]:
    """Batches awaiting a decision, the one nearest its timeout first."""
    return repository.batch_rows_awaiting_decision(session)


def time_left(deadline: datetime | None, now: datetime | None = None) -> str:
    """'5 h 12 min left', or that the timeout is due (a missing decision then counts as a rejection)."""
    if deadline is None:
        return "unknown"
    seconds = int((deadline - (now or utcnow())).total_seconds())
    if seconds <= 0:
        return "timed out (rejecting)"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes} min left"
    if minutes:
        return f"{minutes} min left"
    return f"{seconds} s left"


WAITING_COLUMNS = [
    "batch",
    "source",
    "attempt",
    "failed stage",
    "error type",
    "error",
    "compensation",
    "documents",
    "failed",
    "time left",
]


def waiting_frame(batches: Sequence[repository.BatchRow], now: datetime | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        [
            [
                b.id,
                b.source_name,
                b.attempt,
                b.failed_stage or "",
                b.error_type or "",
                b.error_message or "",
                b.compensation or "",
                b.total,
                b.failed,
                time_left(b.decision_deadline, now),
            ]
            for b in batches
        ],
        columns=WAITING_COLUMNS,
    )


FAILED_COLUMNS = ["seq", "uri", "stage", "reason"]


def failed_artifact_count(session: Session, *, batch_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Artifact.batch_id == batch_id, Artifact.status == ARTIFACT_FAILED)
        )
        or 0
    )


def failed_artifacts(session: Session, *, batch_id: int, limit: int, offset: int = 0) -> pd.DataFrame:
    """The batch's failed documents with the stage and reason, in order."""
    rows = session.execute(
        select(Artifact.seq, Artifact.uri, Artifact.failed_stage, Artifact.error)
        .where(Artifact.batch_id == batch_id, Artifact.status == ARTIFACT_FAILED)
        .order_by(Artifact.seq)
        .limit(limit)
        .offset(offset)
    ).all()
    return pd.DataFrame(
        [[seq, uri, stage or "", error or ""] for seq, uri, stage, error in rows], columns=FAILED_COLUMNS
    )


DECIDED_COLUMNS = ["batch", "source", "decision", "by", "reason", "decided", "status now"]


def recent_decisions(session: Session, *, limit: int = 20) -> pd.DataFrame:
    rows = session.execute(
        select(Batch, Source.name)
        .join(Source, Source.id == Batch.source_id)
        .where(Batch.decided_at.is_not(None))
        .order_by(Batch.decided_at.desc(), Batch.id.desc())
        .limit(limit)
    ).all()
    return pd.DataFrame(
        [
            [
                b.id,
                name,
                b.decision or "",
                b.decided_by or "",
                b.decision_reason or "",
                b.decided_at,
                b.status,
            ]
            for b, name in rows
        ],
        columns=DECIDED_COLUMNS,
    )
