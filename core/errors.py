"""Every error type name the house raises and the dashboard shows (ApplicationError.type, a batch's error type).

One catalogue, low in the house: the guard, the workers, the workflows (stdlib only: safe in the sandbox) and
the operations layer all name an error from here. A member is its string (StrEnum), so stored rows, Temporal
payloads and retry policies see exactly the names they saw before.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    # A source as a whole (guard.types.SourceError.kind). Only SOURCE_UNAVAILABLE is worth retrying.
    INVALID_SOURCE = "InvalidSource"  # the source itself is wrong: retrying will not help
    SOURCE_UNAVAILABLE = "SourceUnavailable"  # the source may come back: worth retrying
    ADDRESS_REFUSED = "AddressRefused"  # the address policy refused a host or a redirect
    FOLDER_REFUSED = "FolderRefused"  # a folder outside every configured root
    SOURCE_TOO_LARGE = "SourceTooLarge"  # more bytes than the limit allows (after decompression)
    FETCH_DEADLINE = "FetchDeadline"  # a fetch took longer than its overall deadline
    PARSE_LIMIT = "ParseLimit"  # parsing what the source sent needed more memory or time than allowed

    # A batch (its workflow's failure, the batch row's error type).
    BATCH_NOT_FOUND = "BatchNotFound"
    TOO_MANY_FAILURES = "TooManyFailures"  # more of its documents failed than the batch may lose
    BATCH_REJECTED = "BatchRejected"  # a person rejected the retry of a failed batch
    NOT_STARTED = "NotStarted"  # a batch row whose workflow could not be started

    # The evaluator, from a chunk's evaluate step.
    EVALUATOR_UNAVAILABLE = "EvaluatorUnavailable"  # the model's API failed for now: the chunk is retried
    EVALUATOR_CONFIG = "EvaluatorConfigError"  # the evaluator's settings are wrong: retrying will not help

    # An ApplicationError raised without a type of its own (Temporal's class name for it).
    APPLICATION_ERROR = "ApplicationError"
