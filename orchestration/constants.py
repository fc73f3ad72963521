"""Names shared by workflows, workers, CLI and dashboard: task queues, activity, query and update names, search
attributes, ID formats."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

# Task queues. Workflows run on the scheduler queue; activities on the queue that fits their load.
SCHEDULER_QUEUE = "loreguard-scheduler"
INGESTION_QUEUE = "loreguard-ingestion"  # I/O bound: fetching feeds, pages, reading folders
PROCESSING_QUEUE = "loreguard-processing"  # CPU bound: normalize, extract, clarify
EVALUATION_QUEUE = "loreguard-evaluation"  # LLM calls, rate limited by the model's quota
ALL_QUEUES = (SCHEDULER_QUEUE, INGESTION_QUEUE, PROCESSING_QUEUE, EVALUATION_QUEUE)
# The task type each queue's workers serve, which is the backlog its autoscaler counts (the KEDA ScaledObjects'
# queueTypes in deploy/k8s) and the Workers page recommends replicas from.
SCALED_TASK_TYPE = {
    SCHEDULER_QUEUE: "workflow",
    INGESTION_QUEUE: "activity",
    PROCESSING_QUEUE: "activity",
    EVALUATION_QUEUE: "activity",
}


class Activity(StrEnum):
    """Every activity's name, once: the workflows call it by this name and workers/activities.py registers it
    under the same one (a typo on either side would leave a workflow waiting for an activity nobody runs)."""

    START_BATCH = "start_batch"
    INGEST_SOURCE = "ingest_source"
    PROCESS_CHUNK = "process_chunk"
    EVALUATE_CHUNK = "evaluate_chunk"
    REEVALUATE_PAGE = "reevaluate_page"
    FINISH_REEVALUATION = "finish_reevaluation"
    FINISH_BATCH = "finish_batch"
    CLOSE_CANCELLED_BATCH = "close_cancelled_batch"
    RECONCILE_BATCHES = "reconcile_batches"
    TALLY_BATCH = "tally_batch"
    COMPENSATE_BATCH = "compensate_batch"
    RAISE_ALERT = "raise_alert"
    AWAIT_DECISION = "await_decision"
    RECORD_DECISION = "record_decision"
    PREPARE_RETRY = "prepare_retry"
    FAIL_CHUNK = "fail_chunk"
    CREATE_BATCH = "create_batch"
    CHECK_SLA = "check_sla"


class Query(StrEnum):
    PROGRESS = "progress"  # a batch's or a re-evaluation's progress (BatchProgress, ReevaluationProgress)


class Update(StrEnum):
    """The operator's decisions on a batch waiting for approval (Temporal Updates: accepted or refused at once)."""

    APPROVE_RETRY = "approve_retry"
    REJECT = "reject"


# Custom search attributes (SQLite visibility allows 10 Keyword and 3 Int attributes).
SA_SOURCE_ID = SearchAttributeKey.for_keyword("LoreGuardSourceId")
SA_BATCH_ID = SearchAttributeKey.for_keyword("LoreGuardBatchId")
SA_BATCH_STATE = SearchAttributeKey.for_keyword("LoreGuardBatchState")
SA_DOCUMENTS = SearchAttributeKey.for_int("LoreGuardDocuments")
SA_ATTEMPT = SearchAttributeKey.for_int("LoreGuardAttempt")
ALL_SEARCH_ATTRIBUTES = (SA_SOURCE_ID, SA_BATCH_ID, SA_BATCH_STATE, SA_DOCUMENTS, SA_ATTEMPT)

# Values of SA_BATCH_STATE.
STATE_INGESTING = "ingesting"
STATE_PROCESSING = "processing"
STATE_COMPLETED = "completed"
STATE_FAILED = "failed"
STATE_AWAITING_APPROVAL = (
    "awaiting_approval"  # failed, compensated, operators notified, waiting for a decision
)
STATE_RETRYING = "retrying"  # a retry was approved; the next attempt is being prepared
STATE_CANCELLED = "cancelled"  # the workflow was cancelled: its children stopped, its row closed

# Workflow ID formats. The token keeps IDs unique when an app database is reset but Temporal keeps history.
BATCH_WORKFLOW_ID = "batch-{batch_id}-{token}"
CHUNK_RANGE_WORKFLOW_ID = "{parent_id}-chunks-{first_chunk}"

# Error types raised as ApplicationError.type are core.errors.ErrorType (one catalogue for every layer).


BATCH_EXECUTION_TIMEOUT = timedelta(days=7)


def batch_workflow_id(batch_id: int, token: str) -> str:
    """The batch workflow's id; `token` is random (uuid4 in a client, workflow.uuid4() inside a workflow)."""
    return BATCH_WORKFLOW_ID.format(batch_id=batch_id, token=token[:8])


def batch_search_attributes(*, batch_id: int, source_id: int) -> TypedSearchAttributes:
    """A new batch workflow's search attributes, whoever starts it (a person's refresh or a schedule)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_SOURCE_ID, str(source_id)),
            SearchAttributePair(SA_BATCH_ID, str(batch_id)),
            SearchAttributePair(SA_BATCH_STATE, STATE_INGESTING),
        ]
    )


# Schedules: one refresh schedule per source, one for the SLA monitor.
SOURCE_SCHEDULE_ID = "source-{source_id}-refresh"
SLA_SCHEDULE_ID = "loreguard-sla-monitor"
SCHEDULED_REFRESH_WORKFLOW_ID = "source-{source_id}-refresh"  # the schedule appends the scheduled time
SLA_MONITOR_WORKFLOW_ID = "loreguard-sla-monitor"


def source_schedule_id(source_id: int) -> str:
    return SOURCE_SCHEDULE_ID.format(source_id=source_id)


REEVALUATION_EXECUTION_TIMEOUT = timedelta(days=7)


def reevaluation_workflow_id(reevaluation_id: int) -> str:
    return f"loreguard-reevaluation-{reevaluation_id}"
