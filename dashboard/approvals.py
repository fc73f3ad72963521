"""Failed batches awaiting an operator's decision: what to show for each, and sending the decision.

Reads are plain (no cache): a decision must show at once. Decisions go to the batch workflow as Temporal Updates
through `orchestration.client.decide`, on the dashboard's one gateway; the workflow itself records the decision
and its audit event, so nothing is written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from dashboard.temporal import TemporalGateway, TemporalUnavailable
from data import repository
from data.models import ARTIFACT_FAILED, BATCH_AWAITING_APPROVAL, Artifact, Batch, Source, utcnow
from orchestration.client import DecisionRefused, decide
from orchestration.types import DecisionResult

DECISION_TIMEOUT = 15.0  # seconds for one Update, SDK retries included


@dataclass(frozen=True)
class WaitingBatch:
    batch_id: int
    source_id: int
    source_name: str
    attempt: int
    failed_stage: str | None
    error_type: str | None
    error_message: str | None
    compensation: str | None
    deadline: datetime | None
    total: int
    stored: int
    failed: int
    workflow_id: str | None


def waiting(session: Session) -> list[WaitingBatch]:
    """Batches awaiting a decision, the one nearest its timeout first."""
    rows = session.execute(
        select(Batch, Source.name)
        .join(Source, Source.id == Batch.source_id)
        .where(Batch.status == BATCH_AWAITING_APPROVAL)
        .order_by(Batch.decision_deadline.is_(None), Batch.decision_deadline, Batch.id)
    ).all()
    return [
        WaitingBatch(
            batch_id=b.id,
            source_id=b.source_id,
            source_name=name,
            attempt=b.attempt,
            failed_stage=b.failed_stage,
            error_type=b.error_type,
            error_message=b.error_message,
            compensation=b.compensation,
            deadline=b.decision_deadline,
            total=b.total,
            stored=b.stored,
            failed=b.failed,
            workflow_id=b.workflow_id,
        )
        for b, name in rows
    ]


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


def waiting_frame(batches: Sequence[WaitingBatch], now: datetime | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        [
            [
                b.batch_id,
                b.source_name,
                b.attempt,
                b.failed_stage or "",
                b.error_type or "",
                b.error_message or "",
                b.compensation or "",
                b.total,
                b.failed,
                time_left(b.deadline, now),
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


@dataclass(frozen=True)
class Outcome:
    """What became of one decision: accepted (with the workflow's answer) or refused (with why)."""

    batch_id: int
    accepted: bool
    message: str


def send_decision(
    gateway: TemporalGateway,
    sessions: sessionmaker[Session],
    *,
    batch_id: int,
    approve: bool,
    actor: str,
    reason: str = "",
) -> Outcome:
    """Send approve_retry or reject to one batch; never raises, the outcome says what happened."""
    reason = reason.strip()
    if not approve and not reason:
        return Outcome(batch_id, False, f"Batch {batch_id}: a rejection needs a reason.")

    async def send(client: Client) -> DecisionResult:
        return await decide(client, sessions, batch_id=batch_id, approve=approve, actor=actor, reason=reason)

    try:
        result = gateway.call(send, timeout=DECISION_TIMEOUT)
    except DecisionRefused as exc:
        return Outcome(batch_id, False, f"Batch {batch_id}: refused: {exc}")
    except repository.NotFound as exc:
        return Outcome(batch_id, False, f"Batch {batch_id}: {exc}")
    except TemporalUnavailable as exc:
        return Outcome(batch_id, False, f"Batch {batch_id}: not sent. {exc}")
    except RPCError as exc:
        return Outcome(batch_id, False, f"Batch {batch_id}: Temporal refused: {exc.message or exc}")
    return Outcome(batch_id, True, f"Batch {batch_id}: {result.decision}. {result.message}.")


def send_decisions(
    gateway: TemporalGateway,
    sessions: sessionmaker[Session],
    batch_ids: Sequence[int],
    *,
    approve: bool,
    actor: str,
    reason: str = "",
) -> list[Outcome]:
    """One decision per batch, each with its own outcome (one refusal does not stop the others)."""
    return [
        send_decision(gateway, sessions, batch_id=b, approve=approve, actor=actor, reason=reason)
        for b in batch_ids
    ]
