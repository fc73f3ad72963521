"""Inputs and results of workflows and activities: small, concrete, IDs and counts only (never bodies)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BatchInput:
    batch_id: int
    source_id: int


@dataclass
class BatchResult:
    batch_id: int
    status: str
    total: int
    stored: int
    failed: int
    error_type: str | None = None
    error_message: str | None = None


@dataclass
class BatchProgress:
    """Answer of the batch workflow's `progress` query."""

    batch_id: int
    state: str
    total: int
    chunks_total: int
    chunks_done: int
    attempt: int = 1


@dataclass
class StartBatchInput:
    batch_id: int
    workflow_id: str


@dataclass
class IngestInput:
    batch_id: int


@dataclass
class IngestResult:
    total: int
    failed: int
    skipped: int = 0  # not gathered: past LOREGUARD_MAX_DOCUMENTS_PER_BATCH, or a folder's unsupported files


@dataclass
class ChunkInput:
    batch_id: int
    start_seq: int
    end_seq: int  # exclusive


@dataclass
class ChunkResult:
    done: int
    failed: int


@dataclass
class ChunkRangeInput:
    """A child workflow's share of a batch: chunks [first_chunk, end_chunk), `next_chunk` after continue-as-new."""

    batch_id: int
    total: int
    chunk_size: int
    first_chunk: int
    end_chunk: int
    window: int
    heartbeat_seconds: float
    next_chunk: int | None = None
    chunks_done: int = 0


@dataclass
class ChunkRangeResult:
    chunks_done: int


@dataclass
class FinishBatchInput:
    batch_id: int
    status: str
    error_type: str | None = None
    error_message: str | None = None


@dataclass
class BatchPlan:
    """What start_batch tells the workflow: the pipeline's shape, taken from settings. (Histories recorded when
    it also carried the source's id, kind and location still replay: unknown fields are ignored.)"""

    chunk_size: int
    chunks_per_child: int
    chunk_window: int
    max_children: int
    heartbeat_seconds: float
    max_failed_share: float = 0.5
    approval_timeout_hours: float = 24.0


@dataclass
class ChunkFailureInput:
    """Marks a chunk's unfinished artifacts failed after its activity gave up, so the batch still adds up."""

    batch_id: int
    start_seq: int
    end_seq: int
    reason: str


@dataclass
class BatchTally:
    total: int
    stored: int
    failed: int


@dataclass
class BatchFailure:
    """Why an attempt of a batch failed; `stage` is "ingest" or "processing"."""

    batch_id: int
    attempt: int
    stage: str
    error_type: str
    message: str


@dataclass
class CompensationResult:
    summary: str


@dataclass
class AlertInput:
    batch_id: int | None
    kind: str  # batch_failed:attempt-N, sla_warning, sla_critical
    level: str  # info | warning | error | critical
    message: str


@dataclass
class AwaitDecisionInput:
    failure: BatchFailure
    compensation: str
    deadline_iso: str  # when a missing decision counts as a rejection by timeout


@dataclass
class DecisionInput:
    """An operator's decision on a failed batch, sent as a Temporal Update."""

    actor: str
    reason: str = ""


@dataclass
class DecisionResult:
    batch_id: int
    decision: str  # approved | rejected
    attempt: int  # the attempt that will run next (approved) or the last one (rejected)
    message: str


@dataclass
class RecordDecisionInput:
    batch_id: int
    decision: str  # approved | rejected | timed_out
    actor: str
    reason: str
    attempt: int


@dataclass
class RetryInput:
    batch_id: int
    stage: str
    attempt: int


@dataclass
class ScheduledRefreshInput:
    """The action of a source's schedule: create a batch row, then run the batch workflow."""

    source_id: int


@dataclass
class CreateBatchInput:
    source_id: int
    key: str  # the scheduled run's workflow and run ID: a retried activity finds its batch instead of a new one
    trigger: str = "schedule"


@dataclass
class ScheduledRefreshResult:
    batch_id: int
    workflow_id: str
    status: str


@dataclass
class SlaMonitorInput:
    """`rounds` > 1 runs several checks `every_seconds` apart in one run (tests); the schedule runs one."""

    rounds: int = 1
    every_seconds: float = 300.0


@dataclass
class SlaCheckInput:
    now_iso: str  # the workflow's clock, so checks are reproducible (and skip time on the test server)


@dataclass
class SlaCheckResult:
    checked: int
    raised: list[str]  # "batch 7: sla_warning"
    resolved: int


@dataclass
class ReevaluationInput:
    """A re-evaluation's workflow input; `after_id` and `done` carry its place over a continue-as-new."""

    reevaluation_id: int
    after_id: int = 0
    done: int = 0
    heartbeat_seconds: float = 60.0  # LOREGUARD_HEARTBEAT_SECONDS of whoever started it
    pages_per_run: int = 50  # activities before continue-as-new (a few hundred history events)


@dataclass
class ReevaluatePageInput:
    reevaluation_id: int
    after_id: int


@dataclass
class ReevaluatePageResult:
    evaluated: int  # documents judged and stored by this page
    last_id: int  # the page's last document id: the next page starts after it
    finished: bool  # nothing in scope is left after this page


@dataclass
class FinishReevaluationInput:
    reevaluation_id: int
    status: str  # completed | cancelled | failed


@dataclass
class ReevaluationResult:
    reevaluation_id: int
    status: str
    done: int


@dataclass
class CancelledBatchInput:
    """Close a batch whose workflow was cancelled; `how` says by whom as far as the workflow knows."""

    batch_id: int
    how: str = "cancelled"


@dataclass
class ReconcileInput:
    """The reconciler's pass over batches in flight (the SLA monitor runs it before its check)."""

    limit: int = 2000


@dataclass
class ReconcileResult:
    checked: int
    closed: list[str]  # "batch 7: cancelled (terminated in Temporal: ...)"
