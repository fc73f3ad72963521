"""Reviewing the evaluator's verdicts: a person confirms or overrides a label (one document, or every document
waiting on a filter), and a reader reports a verdict that looks wrong.

The evaluator's verdict is kept beside the person's (`model_label`); the library shows the person's. Every
decision is audited with the acting person; an override needs a reason, as a rejected batch does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.roles import Permission
from data import repository
from data.repository import ReviewFilter
from data.repository.reviews import REASONS
from operations.access import require
from operations.context import Actor, Context
from operations.errors import Refused
from operations.sources import SourceRef, find

LABELS = ("relevant", "irrelevant")
MAX_REASON = 1000
BULK_CAP = 10_000  # documents one bulk decision may change; a larger filter is narrowed first
BULK_STEP = 500


@dataclass(frozen=True)
class Reviewed:
    decided: int
    overridden: int
    label: str | None  # None: each document kept its evaluator's label


def _label(label: str) -> str:
    cleaned = label.strip().lower()
    if cleaned not in LABELS:
        raise Refused(f"a reviewed label is relevant or irrelevant, not {label!r}")
    return cleaned


def _reason(reason: str | None, *, needed: bool, what: str) -> str | None:
    cleaned = (reason or "").strip()
    if needed and not cleaned:
        raise Refused(f"{what} needs a reason: say why the evaluator's label is wrong")
    if len(cleaned) > MAX_REASON:
        raise Refused(f"a reason is at most {MAX_REASON} characters (this one has {len(cleaned)})")
    return cleaned or None


def review(actor: Actor, ctx: Context, *, artifact_id: int, label: str, reason: str = "") -> Reviewed:
    """Decide one document's label: the evaluator's (a confirmation) or the other one (an override)."""
    target = f"artifact:{artifact_id}"
    require(actor, ctx, Permission.REVIEW, action="review", target=target)
    chosen = _label(label)
    with ctx.sessions.begin() as session:
        model = repository.model_labels(session, artifact_ids=[artifact_id]).get(artifact_id)
        if model is None:
            raise Refused(f"document {artifact_id} has no verdict to review (not stored, or deleted)")
        override = chosen != model
        why = _reason(reason, needed=override, what=f"changing the label from {model} to {chosen}")
        repository.record_review(session, labels={artifact_id: chosen}, actor=actor.name, reason=why)
        repository.record_audit(
            session,
            actor=actor.name,
            action="review:override" if override else "review:confirm",
            target=target,
            reason=f"{model} -> {chosen}" + (f": {why}" if why else ""),
        )
    return Reviewed(decided=1, overridden=int(override), label=chosen)


def review_waiting(
    actor: Actor,
    ctx: Context,
    *,
    f: ReviewFilter,
    expected: int,
    label: str | None = None,
    reason: str = "",
) -> Reviewed:
    """Decide every document waiting on `f` at once: `label` None confirms each one's evaluator label,
    otherwise every one gets `label` (an override wherever the evaluator said otherwise: a reason is needed).

    `expected` is the count the person was shown; when the inbox changed meanwhile (someone else decided, new
    documents arrived) nothing is done and the new count is given, so nobody decides on what they did not see.
    """
    target = "reviews:" + describe(f)
    require(actor, ctx, Permission.REVIEW, action="review_bulk", target=target)
    chosen = _label(label) if label is not None else None
    if chosen is None and f.model_label not in LABELS:
        raise Refused(
            "to confirm in bulk, filter on the evaluator's label (relevant or irrelevant): documents it "
            "labelled 'review' have no label to confirm"
        )
    overriding = chosen is not None and f.model_label != chosen
    why = _reason(reason, needed=overriding, what=f"setting the label {chosen} in bulk")
    with ctx.sessions.begin() as session:
        count = repository.count_waiting(session, f)
        if count != expected:
            raise Refused(
                f"{count} documents wait on this filter now, not {expected}: look at them again and decide"
            )
        if count > BULK_CAP:
            raise Refused(f"{count} documents is more than {BULK_CAP} for one decision: narrow the filter")
        ids = repository.waiting_ids(session, f, limit=BULK_CAP)
        models = repository.model_labels(session, artifact_ids=ids)
        decided = overridden = 0
        for start in range(0, len(ids), BULK_STEP):
            step = ids[start : start + BULK_STEP]
            labels = {i: chosen or models[i] for i in step}
            overridden += sum(1 for i in step if labels[i] != models[i])
            decided += repository.record_review(session, labels=labels, actor=actor.name, reason=why)
        repository.record_audit(
            session,
            actor=actor.name,
            action="review:bulk",
            target=target,
            reason=f"{decided} documents -> {chosen or 'their evaluator label'}"
            + (f": {why}" if why else ""),
        )
    return Reviewed(decided=decided, overridden=overridden, label=chosen)


def report(actor: Actor, ctx: Context, *, artifact_id: int, note: str) -> None:
    """A reader says a verdict looks wrong: the document goes to the review inbox with the note."""
    target = f"artifact:{artifact_id}"
    require(actor, ctx, Permission.READ, action="report_verdict", target=target)
    why = _reason(note, needed=True, what="reporting a verdict")
    assert why is not None
    with ctx.sessions.begin() as session:
        if not repository.record_report(session, artifact_id=artifact_id, actor=actor.name, note=why):
            raise Refused(f"document {artifact_id} has no verdict to report (not stored, or deleted)")
        repository.record_audit(session, actor=actor.name, action="report_verdict", target=target, reason=why)


def describe(f: ReviewFilter) -> str:
    parts = []
    if f.source_id is not None:
        parts.append(f"source {f.source_id}")
    if f.reason:
        parts.append(f"reason {f.reason}")
    if f.model_label:
        parts.append(f"evaluator said {f.model_label}")
    return ", ".join(parts) or "every waiting document"


@dataclass(frozen=True)
class Inbox:
    count: int
    items: list[repository.ReviewItem]


def inbox(actor: Actor, ctx: Context, *, f: ReviewFilter, limit: int = 50) -> Inbox:
    """What waits for review on `f`, oldest first (anyone who may read the dashboard may read it)."""
    require(actor, ctx, Permission.READ, action="read_reviews", target="reviews:" + describe(f))
    with ctx.sessions() as session:
        return Inbox(repository.count_waiting(session, f), repository.waiting(session, f, limit=limit))


def agreement(
    actor: Actor, ctx: Context, *, since: datetime, zone: str = "UTC"
) -> list[repository.AgreementRow]:
    """How often people overrode each evaluator since `since`, per source and week."""
    require(actor, ctx, Permission.READ, action="read_agreement", target="reviews")
    with ctx.sessions() as session:
        return repository.agreement(session, since=since, zone=zone)


def review_filter(
    ctx: Context,
    *,
    source: SourceRef | None = None,
    reason: str | None = None,
    model_label: str | None = None,
) -> ReviewFilter:
    """A filter from what a person typed: a source by id or name, a reason, the evaluator's label."""
    if reason is not None and reason not in REASONS:
        raise Refused(f"a reason is one of {', '.join(REASONS)}, not {reason!r}")
    if model_label is not None and model_label not in ("review", *LABELS):
        raise Refused(f"the evaluator's label is review, relevant or irrelevant, not {model_label!r}")
    source_id = None
    if source is not None:
        with ctx.sessions() as session:
            source_id = find(session, source).id
    return ReviewFilter(source_id=source_id, reason=reason, model_label=model_label)
