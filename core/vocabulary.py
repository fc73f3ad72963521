"""The words every layer shares: source kinds, batch and artifact statuses, decisions, stages, alert kinds.

Plain constants only, so the workflow sandbox, the data layer and the front ends can all import them.
"""

from __future__ import annotations

# Source kinds
KIND_FOLDER = "folder"
KIND_FEED = "feed"
KIND_WEB = "web"
SOURCE_KINDS = (KIND_FOLDER, KIND_FEED, KIND_WEB)

# Batch statuses
BATCH_PENDING = "pending"
BATCH_RUNNING = "running"
BATCH_COMPLETED = "completed"
BATCH_FAILED = "failed"
BATCH_AWAITING_APPROVAL = "awaiting_approval"
BATCH_RETRYING = "retrying"
# Stopped by an operator (or its workflow cancelled or terminated in Temporal): what it stored is kept.
BATCH_CANCELLED = "cancelled"
BATCH_STATUSES = (
    BATCH_PENDING,
    BATCH_RUNNING,
    BATCH_AWAITING_APPROVAL,
    BATCH_RETRYING,
    BATCH_COMPLETED,
    BATCH_FAILED,
    BATCH_CANCELLED,
)
# In flight: the batch's workflow still owns its rows (including one waiting for an operator's decision). The
# SLA clock runs for these, a source with one of these cannot be deleted, and a second refresh is not started.
BATCH_IN_FLIGHT = (BATCH_PENDING, BATCH_RUNNING, BATCH_RETRYING, BATCH_AWAITING_APPROVAL)

# Operator decisions on a failed batch
DECISION_APPROVED = "approved"
DECISION_REJECTED = "rejected"
DECISION_TIMED_OUT = "timed_out"
DECISION_CANCELLED = "cancelled"  # an operator stopped the batch (its history row; not an approval decision)

# Artifact statuses: ingested -> processed -> stored (or unchanged), or failed at any stage.
ARTIFACT_INGESTED = "ingested"
ARTIFACT_PROCESSED = "processed"
ARTIFACT_STORED = "stored"
ARTIFACT_FAILED = "failed"
ARTIFACT_QUARANTINED = "quarantined"  # stored by a batch that then failed: kept, but not shown as good
# The source stored this content (same content hash) in an earlier batch: not stored twice, not evaluated.
ARTIFACT_UNCHANGED = "unchanged"
# Done: no stage will pick the document up again in this attempt.
ARTIFACT_DONE = (ARTIFACT_STORED, ARTIFACT_FAILED, ARTIFACT_UNCHANGED)

# Why ingest skipped what it did not gather (a batch's skip_reasons): the per-batch limit, and a folder's files
# of a type the pipeline does not read.
SKIPPED_OVER_LIMIT = "over the per-batch limit (LOREGUARD_MAX_DOCUMENTS_PER_BATCH)"


def unsupported_file_type(suffix: str) -> str:
    return f"unsupported file type {suffix or '(none)'}"


def skip_reasons(skipped: int, reasons: dict[str, int] | None) -> dict[str, int]:
    """Why a batch's `skipped` were not gathered, reason -> count (a batch ingested before reasons were kept
    skipped only what was over the limit)."""
    if reasons:
        return dict(reasons)
    return {SKIPPED_OVER_LIMIT: skipped} if skipped else {}


# Where a document can fail, in pipeline order; the per-document timed stages are the middle four.
STAGES = ("ingest", "normalize", "extract", "clarify", "evaluate", "store")
TIMED_STAGES = ("normalize", "extract", "clarify", "evaluate")

# Alert kinds of the SLA monitor (alerts are unique per batch and kind).
ALERT_SLA_WARNING = "sla_warning"
ALERT_SLA_CRITICAL = "sla_critical"
SLA_ALERT_KINDS = (ALERT_SLA_WARNING, ALERT_SLA_CRITICAL)
# The review inbox has documents waiting past LOREGUARD_REVIEW_OVERDUE_HOURS (kind "review_overdue:DAY": daily).
ALERT_REVIEW_OVERDUE = "review_overdue"
# A source that delivered nothing new for longer than its interval allows, or whose refreshes keep failing;
# one open alert per source at a time (kind "source_stale:<id>", no batch).
ALERT_SOURCE_STALE = "source_stale"
