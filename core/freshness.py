"""Freshness as a pure function: is a source stale (nothing new for longer than its interval allows, or its
refreshes keep failing), and why, in words for the Sources and SLA pages and the monitor's alert."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from core.vocabulary import BatchStatus


def _span(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = round(seconds / 3600)
    return f"{hours} h" if hours < 48 else f"{round(seconds / 86400)} d"


def stale_reason(
    *,
    now: datetime,
    interval_seconds: int,
    paused: bool,
    registered_at: datetime,
    last_new_document: datetime | None,
    recent_statuses: Sequence[str],
    after_intervals: float,
    after_failures: int,
) -> str | None:
    """Why the source is stale, or None when it is fresh (a paused source is expected to deliver nothing).

    `recent_statuses`: its latest finished batches' statuses, newest first."""
    if paused:
        return None
    reasons = []
    latest = list(recent_statuses[:after_failures])
    if len(latest) == after_failures and all(s == BatchStatus.FAILED for s in latest):
        reasons.append(f"its last {after_failures} refreshes failed")
    since = last_new_document or registered_at
    allowed = timedelta(seconds=interval_seconds * after_intervals)
    if now - since > allowed:
        what = "no new document" if last_new_document is not None else "no document at all"
        reasons.append(
            f"{what} for {_span((now - since).total_seconds())} (it refreshes every "
            f"{_span(interval_seconds)}; stale after {_span(allowed.total_seconds())})"
        )
    return "; ".join(reasons) or None


def stale_since(*, registered_at: datetime, last_new_document: datetime | None) -> datetime:
    """When the source last delivered (or was registered): one stale episode per value, one alert each."""
    return last_new_document or registered_at
