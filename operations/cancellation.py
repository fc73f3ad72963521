"""Cancelling running batches: one, a selection, or every running batch matching a filter (count shown first).

A cancellation is a Temporal cancellation of the batch's workflow, with the person and their reason as its
reason: the workflow cancels its children, waits for their activities to stop at their next heartbeat, and
closes the batch `cancelled` with what it stored kept. The person, the reason and the audit event are written
here once Temporal has taken the request; nothing is written when it has not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from core.roles import Permission
from core.vocabulary import BATCH_IN_FLIGHT, Decision
from data import repository
from operations.access import require
from operations.batches import Outcome
from operations.context import Actor, Context
from operations.errors import NotAccepted, Refused
from operations.sources import SourceRef, find
from orchestration.client import CancelRefused, cancel_batch_workflow
from orchestration.gateway import TemporalUnavailable

CANCEL_TIMEOUT = 15.0  # seconds for one cancellation request, SDK retries included
MAX_REASON = 2000


@dataclass(frozen=True)
class Cancelled:
    batch_id: int
    actor: str
    message: str


@dataclass(frozen=True)
class RunningFilter:
    """Which running batches a bulk cancellation means; the same filter as the Batches page and `batches`."""

    source: SourceRef | None = None
    status: str | None = None  # one of the in-flight statuses, or None for all of them
    since: datetime | None = None


def _reason(reason: str) -> str:
    cleaned = " ".join(reason.split())
    if not cleaned:
        raise Refused("a cancellation needs a reason (it is recorded with the batch and in the audit log)")
    if len(cleaned) > MAX_REASON:
        raise Refused(f"the reason is {len(cleaned):,} characters long; keep it under {MAX_REASON:,}")
    return cleaned


def cancel(actor: Actor, ctx: Context, batch_id: int, *, reason: str) -> Cancelled:
    """Request the cancellation of one batch in flight."""
    require(actor, ctx, Permission.CANCEL, action="cancel", target=f"batch:{batch_id}")
    why = _reason(reason)
    with ctx.sessions() as session:
        try:
            batch = repository.get_batch(session, batch_id=batch_id)
        except repository.NotFound as exc:
            raise Refused(str(exc)) from exc
        status, workflow_id, started = batch.status, batch.workflow_id, batch.started_at
        decision, decided_by = batch.decision, batch.decided_by
    if status not in BATCH_IN_FLIGHT:
        raise NotAccepted(f"batch {batch_id} is not running (it is {status.replace('_', ' ')})")
    if decision == Decision.CANCELLED:
        raise NotAccepted(f"batch {batch_id} is being cancelled already (by {decided_by})")
    if workflow_id is None or (started is None and "/" in workflow_id):
        raise NotAccepted(f"batch {batch_id} has not started its workflow yet; cancel it in a moment")

    async def send(client: Client) -> None:
        await cancel_batch_workflow(
            client,
            workflow_id=workflow_id,
            batch_id=batch_id,
            reason=f"by {actor.name}: {why}",
            rpc_timeout=timedelta(seconds=CANCEL_TIMEOUT - 5),
        )

    try:
        ctx.temporal.call(send, timeout=CANCEL_TIMEOUT)  # TemporalUnavailable: nothing written
    except CancelRefused as exc:
        raise NotAccepted(str(exc)) from exc
    with ctx.sessions.begin() as session:
        repository.record_cancel(session, batch_id=batch_id, actor=actor.name, reason=why)
    return Cancelled(
        batch_id,
        actor.name,
        "cancellation requested; it stops at its activities' next heartbeat and keeps what it stored",
    )


def cancel_many(actor: Actor, ctx: Context, batch_ids: Sequence[int], *, reason: str) -> list[Outcome]:
    """One cancellation per batch, each with its own outcome: one refusal does not stop the others."""
    why = _reason(reason)  # refused once, before anything is sent
    outcomes = []
    for batch_id in batch_ids:
        try:
            done = cancel(actor, ctx, batch_id, reason=why)
        except Refused as exc:
            word = "refused: " if isinstance(exc, NotAccepted) else ""
            outcomes.append(Outcome(batch_id, False, f"Batch {batch_id}: {word}{exc}"))
        except TemporalUnavailable as exc:
            outcomes.append(Outcome(batch_id, False, f"Batch {batch_id}: not sent. {exc}"))
        except RPCError as exc:
            outcomes.append(
                Outcome(batch_id, False, f"Batch {batch_id}: Temporal refused: {exc.message or exc}")
            )
        else:
            outcomes.append(Outcome(batch_id, True, f"Batch {batch_id}: {done.message}."))
    return outcomes


def running_matching(ctx: Context, f: RunningFilter) -> list[repository.CancellableBatch]:
    """The running batches a filter matches, oldest first (what a bulk cancellation would stop)."""
    if f.status is not None and f.status not in BATCH_IN_FLIGHT:
        return []
    with ctx.sessions() as session:
        source_id = None if f.source is None else find(session, f.source).id
        return repository.cancellable_batches(session, source_id=source_id, status=f.status, since=f.since)


def cancel_matching(
    actor: Actor, ctx: Context, f: RunningFilter, *, reason: str, expected: int
) -> list[Outcome]:
    """Cancel every running batch the filter matches, after the person saw `expected` of them.

    More matching now than they were shown is refused (look again first); fewer is fine (some ended)."""
    require(actor, ctx, Permission.CANCEL, action="cancel", target="batches:matching")
    why = _reason(reason)
    matching = running_matching(ctx, f)
    if len(matching) > repository.MAX_CANCEL:
        raise Refused(
            f"more than {repository.MAX_CANCEL:,} running batches match; narrow the filter (source, status)"
        )
    if len(matching) > expected:
        raise Refused(
            f"{len(matching):,} running batch(es) match now, more than the {expected:,} you confirmed; "
            "look at the list again and confirm the new count"
        )
    return cancel_many(actor, ctx, [b.batch_id for b in matching], reason=why)
