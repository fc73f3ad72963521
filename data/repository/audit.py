"""The audit log: who did what to which target, and why."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from data.models import AuditEvent, Batch, Source

# --- audit ---------------------------------------------------------------------------------------------


def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    reason: str | None = None,
    target_name: str | None = None,
) -> None:
    """One event; `target_name` is what the target is called now (kept when the target is deleted)."""
    if not actor.strip():
        raise ValueError("an audit event needs an actor")
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            target=target,
            reason=reason,
            target_name=None if target_name is None else target_name[:500],
        )
    )


def batch_name(session: Session, batch_id: int) -> str | None:
    """'batch 12 of advisories', or None when there is no such batch: an audit event's target name."""
    name = session.scalar(
        select(Source.name).join(Batch, Batch.source_id == Source.id).where(Batch.id == batch_id)
    )
    return None if name is None else f"batch {batch_id} of {name}"


def source_name(session: Session, source_id: int) -> str | None:
    return session.scalar(select(Source.name).where(Source.id == source_id))
