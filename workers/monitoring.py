"""Steps of the scheduled workflows: create a scheduled batch's row, and the SLA monitor's check."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.exceptions import ApplicationError

from core.errors import ErrorType
from core.freshness import stale_reason, stale_since
from core.sla_rules import LEVEL_CRITICAL, LEVEL_WARNING, alert_message, assess
from core.vocabulary import ALERT_REVIEW_OVERDUE, ALERT_SLA_WARNING, ALERT_SOURCE_STALE, SLA_ALERT_KINDS
from data import repository
from orchestration.types import AlertInput, CreateBatchInput, SlaCheckInput, SlaCheckResult
from workers.steps import BatchSteps


def create_scheduled_batch(steps: BatchSteps, input: CreateBatchInput) -> int:
    """The batch row of a scheduled refresh; the same row when the activity is retried (keyed by `key`).

    0 (no batch) when the source is paused in the database: its schedule missed the pause (Temporal was down
    then) and `loreguard up` will pause it; until then the database's word holds.
    """
    with steps._tx() as session:
        existing = repository.batch_with_workflow_id(session, workflow_id=input.key)
        if existing is not None:
            return int(existing)
        try:
            source = repository.get_source(session, source_id=input.source_id)
        except repository.NotFound:
            raise ApplicationError(
                f"source {input.source_id} no longer exists",
                type=ErrorType.INVALID_SOURCE,
                non_retryable=True,
            ) from None
        if source.paused:
            return 0
        batch = repository.create_batch(session, source_id=input.source_id, trigger=input.trigger)
        batch.workflow_id = input.key  # replaced by the batch workflow's ID when it starts
        return batch.id


def check_sla(steps: BatchSteps, input: SlaCheckInput) -> SlaCheckResult:
    """Raise the SLA alerts running batches are due (each once), resolve those of batches that ended."""
    s = steps.settings
    now = datetime.fromisoformat(input.now_iso)
    # Incidents first, rows second: a retry after a crash in between resolves them again, never not at all.
    with steps.sessions() as session:
        ended = {
            batch_id: repository.open_alert_kinds(session, batch_id=batch_id, kinds=SLA_ALERT_KINDS)
            for batch_id in repository.ended_batches_with_open_alerts(session, kinds=SLA_ALERT_KINDS)
        }
    for batch_id, kinds in ended.items():
        steps.resolve_alerts(batch_id, kinds)
    with steps._tx() as session:
        rows = repository.in_flight_batches(session)
        resolved = sum(
            repository.resolve_alerts(session, batch_id=batch_id, kinds=SLA_ALERT_KINDS) for batch_id in ended
        )
        open_kinds = repository.raised_alerts(session, kinds=SLA_ALERT_KINDS)
        progress = {row.batch_id: repository.batch_progress(session, batch_id=row.batch_id) for row in rows}
    raised: list[str] = []
    late = {LEVEL_WARNING: 0, LEVEL_CRITICAL: 0}
    for row in rows:
        batch_id, source_name = row.batch_id, row.source_name
        done, total = progress[batch_id]
        assessment = assess(
            started_at=row.started_at,
            now=now,
            done=done,
            total=total,
            warning_hours=s.sla_warning_hours,
            critical_hours=s.sla_critical_hours,
        )
        for _, level in assessment.due:
            late[level] += 1
        for kind, level in assessment.due:
            if (batch_id, kind) in open_kinds:
                continue  # raised before (open or resolved): once per batch
            limit = s.sla_warning_hours if kind == ALERT_SLA_WARNING else s.sla_critical_hours
            steps.raise_alert(
                AlertInput(
                    batch_id=batch_id,
                    kind=kind,
                    level=level,
                    message=alert_message(batch_id, source_name, level, assessment, limit),
                )
            )
            raised.append(f"batch {batch_id}: {kind}")
    overdue = _review_overdue(steps, now)
    if overdue:
        raised.append(overdue)
    if steps.metrics is not None:  # for the alert rules: the batches past each limit, and that the check ran
        steps.metrics.record_sla_check(
            at=time.time(), warning=late[LEVEL_WARNING], critical=late[LEVEL_CRITICAL]
        )
    fresh_raised, fresh_resolved = check_freshness(steps, now)
    return SlaCheckResult(checked=len(rows), raised=raised + fresh_raised, resolved=resolved + fresh_resolved)


def _review_overdue(steps: BatchSteps, now: datetime) -> str | None:
    """Documents waiting in the review inbox past LOREGUARD_REVIEW_OVERDUE_HOURS: one notice a day while any
    are (the monitor runs every few minutes; people need a reminder, not a stream)."""
    hours = steps.settings.review_overdue_hours
    with steps.sessions() as session:
        count = repository.count_overdue(session, older_than=now - timedelta(hours=hours))
        oldest = repository.oldest_waiting(session) if count else None
    if not count:
        return None
    day = now.astimezone(ZoneInfo(steps.settings.timezone)).date().isoformat()
    kind = f"{ALERT_REVIEW_OVERDUE}:{day}"
    with steps.sessions() as session:
        if (None, kind) in repository.raised_alerts(session, kinds=[kind]):
            return None  # today's reminder went out
    since = f" (the oldest since {oldest:%Y-%m-%d %H:%M} UTC)" if oldest else ""
    steps.raise_alert(
        AlertInput(
            batch_id=None,
            kind=kind,
            level="warning",
            message=f"{count} document(s) have waited for review longer than {hours:g} h{since}: "
            "open the Review page",
        )
    )
    return kind


def check_freshness(steps: BatchSteps, now: datetime) -> tuple[list[str], int]:
    """Alert once per stale episode of a source (through the configured channels); resolve the alerts of
    sources that delivered again. Returns (raised, resolved)."""
    s = steps.settings
    with steps.sessions() as session:
        sources = repository.source_activity(session, recent=s.stale_after_failures)
        open_alerts = repository.open_stale_alerts(session, prefix=ALERT_SOURCE_STALE)
    raised: list[str] = []
    settled: list[str] = []
    for source in sources:
        reason = stale_reason(
            now=now,
            interval_seconds=source.interval_seconds,
            paused=source.paused,
            registered_at=source.registered_at,
            last_new_document=source.last_new_document,
            recent_statuses=source.recent_statuses,
            after_intervals=s.stale_after_intervals,
            after_failures=s.stale_after_failures,
        )
        current = None
        if reason is not None:
            since = stale_since(
                registered_at=source.registered_at, last_new_document=source.last_new_document
            )
            current = f"{ALERT_SOURCE_STALE}:{source.source_id}:{int(since.timestamp())}"
            if current not in open_alerts.get(source.source_id, []):
                steps.raise_alert(
                    AlertInput(
                        batch_id=None,
                        kind=current,
                        level="warning",
                        message=f"Source {source.name!r} is stale: {reason}.",
                    )
                )
                raised.append(f"source {source.source_id}: stale")
        settled += [k for k in open_alerts.get(source.source_id, []) if k != current]
    if settled:
        steps.resolve_alerts(None, settled)
        with steps._tx() as session:
            repository.resolve_source_alerts(session, kinds=settled)
    return raised, len(settled)
