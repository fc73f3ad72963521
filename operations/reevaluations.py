"""Re-evaluating stored documents with the current evaluator and topics: preview (how many, and for a model
evaluator the estimated tokens and cost), start (a durable Temporal workflow), cancel, and list.

A person's decision on a document is never overwritten: a re-evaluation updates the evaluator's verdict beside
it (see repository.upsert_evaluations). Role: analyst and above, audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from core.roles import Permission
from data import repository
from data.repository import ReevaluationScope
from operations.access import require
from operations.context import Actor, Context
from operations.errors import Refused
from orchestration.constants import (
    REEVALUATION_EXECUTION_TIMEOUT,
    SCHEDULER_QUEUE,
    reevaluation_workflow_id,
)
from orchestration.gateway import TemporalUnavailable
from orchestration.types import ReevaluationInput, ReevaluationResult

START_TIMEOUT = 10.0
CHARS_PER_TOKEN = 4  # English text, for an estimate before the API has reported any tokens
PROMPT_TOKENS = 350  # the instructions and topics sent with every document
MAX_TEXT_TOKENS = 2000  # the evaluator sends at most this much of a document (about 8,000 characters)


@dataclass(frozen=True)
class Preview:
    documents: int
    evaluator: str
    model: str | None
    topics_version: str | None
    reviewed: int  # documents a person decided: their label stays, the evaluator's verdict beside it changes
    estimated_tokens: int | None  # model evaluators only
    estimated_cost: float | None  # with LOREGUARD_OPENAI_PRICE_PER_MILLION_TOKENS

    def sentence(self) -> str:
        parts = [f"{self.documents:,} document(s) will be judged again by {self.evaluator}"]
        if self.model:
            parts.append(f"(model {self.model})")
        text = " ".join(parts)
        if self.reviewed:
            text += f"; {self.reviewed:,} of them were decided by a person, whose labels stay"
        if self.estimated_tokens is not None:
            text += f"; about {self.estimated_tokens:,} tokens"
            if self.estimated_cost is not None:
                text += f", about {self.estimated_cost:,.2f} at the configured price"
        return text + "."


@dataclass(frozen=True)
class ReevaluationRow:
    id: int
    description: str
    status: str
    total: int
    done: int
    tokens: int
    evaluator: str
    model: str | None
    started_by: str
    created_at: datetime
    finished_at: datetime | None
    workflow_id: str | None


def _current(ctx: Context) -> tuple[str, str | None, str | None]:
    """(evaluator, model, topics version) of what the workers judge with now, from the same settings."""
    return ctx.worker_processing().evaluator_identity(ctx.settings)


def describe(ctx: Context, scope: ReevaluationScope) -> str:
    parts = []
    with ctx.sessions() as session:
        if scope.source_id is not None:
            parts.append(f"source {repository.source_name(session, scope.source_id) or scope.source_id}")
    if scope.batch_id is not None:
        parts.append(f"batch {scope.batch_id}")
    if scope.label is not None:
        parts.append(f"labelled {scope.label}")
    if scope.stale_only:
        parts.append("judged against other topics or another model")
    return ", ".join(parts) or "the whole library"


def preview(actor: Actor, ctx: Context, scope: ReevaluationScope) -> Preview:
    require(actor, ctx, Permission.REVIEW, action="preview_reevaluation", target="library")
    evaluator, model, version = _current(ctx)
    with ctx.sessions() as session:
        count = repository.count_in_scope(session, scope, topics_version=version)
        reviewed = repository.count_reviewed_in_scope(session, scope, topics_version=version)
        tokens = None
        if evaluator == "openai":
            mean = repository.mean_tokens(session, evaluator="openai")
            if mean is not None:
                tokens = round(mean * count)
            else:
                chars = repository.scope_text_chars(session, scope, topics_version=version)
                tokens = count * PROMPT_TOKENS + min(chars // CHARS_PER_TOKEN, count * MAX_TEXT_TOKENS)
    price = ctx.settings.openai_price_per_million_tokens
    cost = tokens / 1_000_000 * price if tokens is not None and price is not None else None
    return Preview(count, evaluator, model, version, reviewed, tokens, cost)


def start(actor: Actor, ctx: Context, scope: ReevaluationScope, *, expected: int, reason: str = "") -> int:
    """Start re-evaluating the scope; `expected` is the count the person was shown (else nothing starts)."""
    require(actor, ctx, Permission.REVIEW, action="reevaluate", target="library")
    evaluator, model, version = _current(ctx)
    description = describe(ctx, scope)
    with ctx.sessions.begin() as session:
        if repository.running_reevaluations(session):
            raise Refused(
                "a re-evaluation is running: wait for it to end, or cancel it, before starting another"
            )
        count = repository.count_in_scope(session, scope, topics_version=version)
        if count != expected:
            raise Refused(f"{count} documents are in this scope now, not {expected}: look again and confirm")
        if not count:
            raise Refused("no stored document is in this scope: nothing to re-evaluate")
    ctx.temporal.call(_reachable, timeout=START_TIMEOUT)  # nothing written when Temporal is down
    with ctx.sessions.begin() as session:
        row = repository.create_reevaluation(
            session,
            scope=scope,
            description=description,
            total=count,
            evaluator=evaluator,
            model=model,
            topics_version=version,
            started_by=actor.name,
            reason=reason.strip() or None,
        )
        reevaluation_id = row.id
        workflow_id = reevaluation_workflow_id(reevaluation_id)
        repository.set_reevaluation_workflow(
            session, reevaluation_id=reevaluation_id, workflow_id=workflow_id
        )
        repository.record_audit(
            session,
            actor=actor.name,
            action="reevaluate",
            target=f"reevaluation:{reevaluation_id}",
            reason=f"{count} documents: {description}" + (f": {reason.strip()}" if reason.strip() else ""),
        )

    async def go(client: Client) -> None:
        await client.start_workflow(
            "ReevaluationWorkflow",
            ReevaluationInput(reevaluation_id, heartbeat_seconds=ctx.settings.heartbeat_seconds),
            id=workflow_id,
            task_queue=SCHEDULER_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            execution_timeout=REEVALUATION_EXECUTION_TIMEOUT,
            result_type=ReevaluationResult,
        )

    try:
        ctx.temporal.call(go, timeout=START_TIMEOUT)
    except (TemporalUnavailable, RPCError) as exc:
        with ctx.sessions.begin() as session:
            repository.finish_reevaluation(session, reevaluation_id=reevaluation_id, status="failed")
        raise Refused(f"The re-evaluation was not started: {exc}") from exc
    return reevaluation_id


def cancel(actor: Actor, ctx: Context, reevaluation_id: int, *, reason: str = "") -> None:
    """Ask the workflow to stop: the page in hand stops at its next heartbeat; what was stored stays."""
    target = f"reevaluation:{reevaluation_id}"
    require(actor, ctx, Permission.REVIEW, action="cancel_reevaluation", target=target)
    with ctx.sessions() as session:
        row = repository.get_reevaluation(session, reevaluation_id=reevaluation_id)
        if row is None:
            raise Refused(f"there is no re-evaluation {reevaluation_id}")
        if row.status != repository.REEVALUATION_RUNNING:
            raise Refused(f"re-evaluation {reevaluation_id} is {row.status} already")
        workflow_id = row.workflow_id or reevaluation_workflow_id(reevaluation_id)

    async def stop(client: Client) -> None:
        await client.get_workflow_handle(workflow_id).cancel()

    ctx.temporal.call(stop, timeout=START_TIMEOUT)
    with ctx.sessions.begin() as session:
        repository.record_audit(
            session,
            actor=actor.name,
            action="cancel_reevaluation",
            target=target,
            reason=reason.strip() or None,
        )


def recent(actor: Actor, ctx: Context, *, limit: int = 20) -> list[ReevaluationRow]:
    require(actor, ctx, Permission.READ, action="read_reevaluations", target="library")
    with ctx.sessions() as session:
        return [
            ReevaluationRow(
                r.id,
                r.description,
                r.status,
                r.total,
                r.done,
                r.tokens,
                r.evaluator,
                r.model,
                r.started_by,
                r.created_at,
                r.finished_at,
                r.workflow_id,
            )
            for r in repository.list_reevaluations(session, limit=limit)
        ]


async def _reachable(client: Client) -> None:
    """Nothing: the gateway connects before running it."""
