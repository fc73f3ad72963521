"""Actions on batches: start a refresh of a source now, and decide on failed batches (single and bulk).

A decision is a Temporal Update to the batch's workflow, which records the decision and its audit event itself;
a refusal comes back at once (decided already, no longer waiting, a rejection without a reason).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.service import RPCError

from core.errors import ErrorType
from core.roles import Permission
from data import repository
from operations.access import require
from operations.context import Actor, Context
from operations.errors import AlreadyRunning, NotAccepted, Refused
from operations.sources import SourceRef, find
from orchestration.client import DecisionRefused, send_decision, start_batch_workflow
from orchestration.constants import batch_workflow_id
from orchestration.gateway import TemporalUnavailable
from orchestration.types import DecisionResult

START_TIMEOUT = 10.0  # seconds to start a workflow, SDK retries included
DECISION_TIMEOUT = 15.0  # seconds for one Update, SDK retries included


@dataclass(frozen=True)
class RefreshStarted:
    batch_id: int
    workflow_id: str
    source_id: int
    source_name: str
    full: bool = False


def refresh_source(
    actor: Actor, ctx: Context, source: SourceRef, *, trigger: str = "manual", full: bool = False
) -> RefreshStarted:
    """Create a batch of the source and start its workflow now.

    A refresh is incremental: it gathers and processes only what changed since the last successful one.
    `full` gathers and processes everything again (after a parser changed, say): no conditional request,
    no file recognised by its sighting, no document recognised by its raw hash.

    Temporal is reached before any row is written, so an unreachable Temporal leaves nothing behind; a start
    that fails after the row exists ends that batch failed with the reason rather than pending forever.
    """
    action = "refresh_full" if full else "refresh"
    require(actor, ctx, Permission.MANAGE_SOURCES, action=action, target=f"source:{source}")
    with ctx.sessions() as session:
        found = find(session, source)
        source_id, source_name = found.id, found.name
        _refuse_a_second_batch(session, source_id, source_name)
    ctx.temporal.call(_reachable, timeout=START_TIMEOUT)  # TemporalUnavailable: nothing written
    with ctx.sessions.begin() as session:
        repository.lock_source(session, source_id=source_id)
        _refuse_a_second_batch(session, source_id, source_name)
        batch = repository.create_batch(session, source_id=source_id, trigger=trigger, full=full)
        batch_id = batch.id
        workflow_id = batch_workflow_id(batch_id, uuid.uuid4().hex)
        batch.workflow_id = workflow_id
        repository.record_audit(
            session,
            actor=actor.name,
            action=action,
            target=f"source:{source_id}",
            target_name=source_name,
            reason=f"batch {batch_id}"
            + (" (full refresh: everything gathered and processed again)" if full else ""),
        )

    async def start(client: Client) -> None:
        await start_batch_workflow(client, batch_id=batch_id, source_id=source_id, workflow_id=workflow_id)

    try:
        ctx.temporal.call(start, timeout=START_TIMEOUT)
    except (TemporalUnavailable, RPCError) as exc:
        reason = str(exc) if isinstance(exc, TemporalUnavailable) else f"Temporal refused: {exc.message}"
        with ctx.sessions.begin() as session:
            repository.close_unstarted_batch(
                session,
                batch_id=batch_id,
                error_type=ErrorType.NOT_STARTED,
                message=f"the workflow could not be started: {reason}",
            )
        raise Refused(f"The refresh was not started. {reason}") from exc
    return RefreshStarted(batch_id, workflow_id, source_id, source_name, full)


def _refuse_a_second_batch(session: Session, source_id: int, source_name: str) -> None:
    """One batch per source at a time (scheduled runs skip overlaps the same way)."""
    busy = repository.batch_in_flight(session, source_id=source_id)
    if busy is not None:
        status = repository.get_batch(session, batch_id=busy).status
        raise AlreadyRunning(
            f"Source {source_name!r} already has batch {busy} in flight ({status.replace('_', ' ')}); "
            "wait for it to finish, or decide on it if it awaits approval.",
            batch_id=busy,
        )


async def _reachable(client: Client) -> None:
    """Nothing: the gateway connects before running it, which is the point."""


@dataclass(frozen=True)
class Decided:
    """An accepted decision, with the workflow's answer."""

    batch_id: int
    decision: str
    actor: str
    message: str
    result: DecisionResult


def approve_retry(actor: Actor, ctx: Context, batch_id: int, *, reason: str = "") -> Decided:
    """Approve another attempt of a failed batch awaiting a decision (over what failed)."""
    return _decide(actor, ctx, batch_id, approve=True, reason=reason)


def reject(actor: Actor, ctx: Context, batch_id: int, *, reason: str) -> Decided:
    """End a failed batch awaiting a decision; a reason is required."""
    return _decide(actor, ctx, batch_id, approve=False, reason=reason)


def _decide(actor: Actor, ctx: Context, batch_id: int, *, approve: bool, reason: str) -> Decided:
    action = "approve" if approve else "reject"
    require(actor, ctx, Permission.DECIDE, action=action, target=f"batch:{batch_id}")
    reason = reason.strip()
    if not approve and not reason:
        raise Refused("a rejection needs a reason")
    with ctx.sessions() as session:
        try:
            workflow_id = repository.get_batch(session, batch_id=batch_id).workflow_id
        except repository.NotFound as exc:
            raise Refused(str(exc)) from exc
    if workflow_id is None:
        raise NotAccepted(f"batch {batch_id} has no workflow")

    async def send(client: Client) -> DecisionResult:
        return await send_decision(
            client,
            workflow_id=workflow_id,
            batch_id=batch_id,
            approve=approve,
            actor=actor.name,
            reason=reason,
            rpc_timeout=timedelta(seconds=DECISION_TIMEOUT - 5),
        )

    try:
        result = ctx.temporal.call(send, timeout=DECISION_TIMEOUT)
    except DecisionRefused as exc:
        raise NotAccepted(str(exc)) from exc
    return Decided(batch_id, result.decision, actor.name, result.message, result)


@dataclass(frozen=True)
class Outcome:
    """What became of one decision of a bulk action: accepted, or refused with why."""

    batch_id: int
    accepted: bool
    message: str


def decide_many(
    actor: Actor, ctx: Context, batch_ids: Sequence[int], *, approve: bool, reason: str = ""
) -> list[Outcome]:
    """One decision per batch, each with its own outcome: one refusal does not stop the others."""
    outcomes = []
    for batch_id in batch_ids:
        try:
            done = _decide(actor, ctx, batch_id, approve=approve, reason=reason)
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
            outcomes.append(Outcome(batch_id, True, f"Batch {batch_id}: {done.decision}. {done.message}."))
    return outcomes


def as_dict(decided: Decided) -> dict[str, Any]:
    """The decision as the CLI's --json prints it (stable keys)."""
    return {**dataclasses.asdict(decided.result), "accepted": True, "actor": decided.actor}
