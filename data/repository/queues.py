"""Task-queue backlog samples: written by the workers' backlog monitor (workers/task_queues.py), at most one
per interval, old ones deleted as new ones come; read by the Workers page."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from data.models import QueueSample


def record_queue_samples(
    session: Session,
    *,
    at: datetime,
    samples: Sequence[tuple[str, str, int, float]],
    every: timedelta,
    keep: timedelta,
) -> bool:
    """Store (queue, task type, backlog, age in s) at `at` unless a sample was taken within `every`;
    returns whether it stored them. Samples older than `keep` are deleted."""
    newest = session.scalar(select(func.max(QueueSample.sampled_at)))
    if newest is not None and at - newest < every:
        return False
    session.add_all(
        QueueSample(sampled_at=at, queue=q, task_type=t, backlog=b, backlog_age_s=a) for q, t, b, a in samples
    )
    session.execute(delete(QueueSample).where(QueueSample.sampled_at < at - keep))
    return True
