"""The words every layer shares: source kinds, batch and artifact statuses, decisions, stages, alert kinds.

Stdlib only (StrEnums like core.roles.Role, and plain constants), so the workflow sandbox, the data layer and
the front ends can all import them. A member is its string: the database stores it, Temporal payloads carry
it and tests compare it as the plain word it always was. Click's Choice reads an Enum by member name, so a
command line offers `.value`s (see cli/).
"""

from __future__ import annotations

from enum import StrEnum


class SourceKind(StrEnum):
    FOLDER = "folder"
    FEED = "feed"
    WEB = "web"


SOURCE_KINDS = tuple(SourceKind)


class BatchStatus(StrEnum):
    """A batch's status; in this order on every list and filter."""

    PENDING = "pending"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    # Stopped by an operator (or its workflow cancelled or terminated in Temporal): what it stored is kept.
    CANCELLED = "cancelled"


BATCH_STATUSES = tuple(BatchStatus)
# In flight: the batch's workflow still owns its rows (including one waiting for an operator's decision). The
# SLA clock runs for these, a source with one of these cannot be deleted, and a second refresh is not started.
BATCH_IN_FLIGHT = (
    BatchStatus.PENDING,
    BatchStatus.RUNNING,
    BatchStatus.RETRYING,
    BatchStatus.AWAITING_APPROVAL,
)


class Decision(StrEnum):
    """An operator's decision on a failed batch (and the history row of a cancelled one)."""

    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"  # an operator stopped the batch (its history row; not an approval decision)


class ArtifactStatus(StrEnum):
    """ingested -> processed -> stored (or unchanged), or failed at any stage."""

    INGESTED = "ingested"
    PROCESSED = "processed"
    STORED = "stored"
    FAILED = "failed"
    QUARANTINED = "quarantined"  # stored by a batch that then failed: kept, but not shown as good
    # The source stored this content (same content hash) in an earlier batch: not stored twice, not evaluated.
    UNCHANGED = "unchanged"


# Done: no stage will pick the document up again in this attempt.
ARTIFACT_DONE = (ArtifactStatus.STORED, ArtifactStatus.FAILED, ArtifactStatus.UNCHANGED)

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


class Stage(StrEnum):
    """Where a document can fail, in pipeline order."""

    INGEST = "ingest"
    NORMALIZE = "normalize"
    EXTRACT = "extract"
    CLARIFY = "clarify"
    EVALUATE = "evaluate"
    STORE = "store"


STAGES = tuple(Stage)
# The per-document timed stages (an artifact's <stage>_ms columns): the middle four.
TIMED_STAGES = (Stage.NORMALIZE, Stage.EXTRACT, Stage.CLARIFY, Stage.EVALUATE)

# Alert kinds of the SLA monitor (alerts are unique per batch and kind).
ALERT_SLA_WARNING = "sla_warning"
ALERT_SLA_CRITICAL = "sla_critical"
SLA_ALERT_KINDS = (ALERT_SLA_WARNING, ALERT_SLA_CRITICAL)
# The review inbox has documents waiting past LOREGUARD_REVIEW_OVERDUE_HOURS (kind "review_overdue:DAY": daily).
ALERT_REVIEW_OVERDUE = "review_overdue"
# A source that delivered nothing new for longer than its interval allows, or whose refreshes keep failing;
# one open alert per source at a time (kind "source_stale:<id>", no batch).
ALERT_SOURCE_STALE = "source_stale"
