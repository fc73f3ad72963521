"""Every retry policy and timeout the workflows declare, in one place, with why each is what it is."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from core.errors import ErrorType

# Bookkeeping activities: short database writes (batch rows, decisions, alerts). They are idempotent and must
# outlive a database outage rather than fail a batch over it, so they retry without an attempt limit (backing
# off to every 30 s); the workflow's own execution timeout bounds them.
BOOKKEEPING_TIMEOUT = timedelta(minutes=1)
BOOKKEEPING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=0
)

# Ingest: 3 attempts, 30 s apart at first, at most 10 min apart; a source that can never work is not retried.
INGEST_TIMEOUT = timedelta(hours=2)
INGEST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=30),
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=3,
    non_retryable_error_types=[ErrorType.INVALID_SOURCE],
)

# Per-artifact work: a chunk's activity may take up to 30 min; transient failures are retried with backoff.
# Documents that can never succeed do not raise: they are recorded as failed inside the chunk.
CHUNK_TIMEOUT = timedelta(minutes=30)
CHUNK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=8,
    non_retryable_error_types=[ErrorType.EVALUATOR_CONFIG],
)
MIN_CHUNK_HEARTBEAT = timedelta(seconds=60)

# The SLA monitor's check reads every batch in flight; one round must end well within its 5-minute schedule.
SLA_CHECK_TIMEOUT = timedelta(minutes=2)

# Celery tasks of the hybrid (LOREGUARD_PROCESSING_BACKEND=celery): 3 attempts with exponential backoff, as the
# study sets them (1 s, 2 s, ... at most 60 s, jittered). A task that gives up fails the chunk activity, which
# CHUNK_RETRY retries over what is left; documents that can never succeed do not raise (they fail alone).
CELERY_TASK_ATTEMPTS = 3
CELERY_RETRY_BACKOFF_SECONDS = 1
CELERY_RETRY_BACKOFF_MAX_SECONDS = 60
