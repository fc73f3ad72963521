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

from core.vocabulary import ArtifactStatus, BatchStatus
from dashboard.formatting import status_word
from data import repository
from data.models import Artifact, Batch, BatchDecision, Source, utcnow

DECISION_TIMEOUT = 15.0  # seconds for one Update, SDK retries included


BatchRow = repository.BatchRow  # a waiting batch, as the Approvals page shows it


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


# How long is left and what went wrong first, so a 1440 px screen shows them beside the batch without
# scrolling sideways; the counts and the compensation after.
WAITING_COLUMNS = [
    "batch",
    "source",
    "time left",
    "failed stage",
    "error type",
    "error",
    "failed",
    "documents",
    "attempt",
    "compensation",
]


def waiting_frame(batches: Sequence[repository.BatchRow], now: datetime | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        [
            [
                b.id,
                b.source_name,
                time_left(b.decision_deadline, now),
                b.failed_stage or "",
                b.error_type or "",
                b.error_message or "",
                b.failed,
                b.total,
                b.attempt,
                b.compensation or "",
            ]
            for b in batches
        ],
        columns=WAITING_COLUMNS,
    )


FAILED_COLUMNS = ["seq", "uri", "stage", "reason"]


def failed_artifact_count(session: Session, *, batch_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                Artifact.batch_id == batch_id, Artifact.status == ArtifactStatus.FAILED
            )
        )
        or 0
    )


def failed_artifacts(session: Session, *, batch_id: int, limit: int, offset: int = 0) -> pd.DataFrame:
    """The batch's failed documents with the stage and reason, in order."""
    rows = session.execute(
        select(Artifact.seq, Artifact.uri, Artifact.failed_stage, Artifact.error)
        .where(Artifact.batch_id == batch_id, Artifact.status == ArtifactStatus.FAILED)
        .order_by(Artifact.seq)
        .limit(limit)
        .offset(offset)
    ).all()
    return pd.DataFrame(
        [[seq, uri, stage or "", error or ""] for seq, uri, stage, error in rows], columns=FAILED_COLUMNS
    )


DECIDED_COLUMNS = ["decided", "batch", "source", "attempt", "decision", "by", "reason", "status now"]


def recent_decisions(session: Session, *, limit: int = 20, batch_id: int | None = None) -> pd.DataFrame:
    """Every decision (not only a batch's last), newest first: of one batch, or of all batches."""
    stmt = (
        select(BatchDecision, Source.name, Batch.status)
        .join(Batch, Batch.id == BatchDecision.batch_id)
        .join(Source, Source.id == Batch.source_id)
    )
    if batch_id is not None:
        stmt = stmt.where(BatchDecision.batch_id == batch_id)
    rows = session.execute(
        stmt.order_by(BatchDecision.decided_at.desc(), BatchDecision.id.desc()).limit(limit)
    ).all()
    return pd.DataFrame(
        [
            [
                d.decided_at,
                d.batch_id,
                name,
                d.attempt,
                status_word(d.decision),
                d.actor,
                d.reason or "",
                status_word(status),
            ]
            for d, name, status in rows
        ],
        columns=DECIDED_COLUMNS,
    ).astype({"attempt": "Int64"})


def waiting_ids(session: Session, *, source_id: int | None = None) -> list[int]:
    """Ids of the batches awaiting a decision (of one source), nearest timeout first: a bulk decision's set."""
    stmt = select(Batch.id).where(Batch.status == BatchStatus.AWAITING_APPROVAL)
    if source_id is not None:
        stmt = stmt.where(Batch.source_id == source_id)
    return list(session.scalars(stmt.order_by(Batch.decision_deadline, Batch.id)))
