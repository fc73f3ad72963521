"""Reviewing verdicts through the operations layer, on SQLite and PostgreSQL: what an analyst decides is what the
library shows, the evaluator's verdict stays beside it, a re-evaluation never overwrites it, and every rule
(role, reason, the count a person saw) is checked here, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.roles import Role
from core.settings import Settings
from data import repository
from data.models import Artifact, AuditEvent, Evaluation, utcnow
from data.repository import ReviewFilter
from operations import reviews
from operations.context import Actor, Context
from operations.errors import Forbidden, Refused
from tests.support.library import Verdict, store_documents

ANALYST = Actor("ana@example.org", frozenset({Role.ANALYST}))
VIEWER = Actor("vic@example.org", frozenset({Role.VIEWER}))
MANAGER = Actor("max@example.org", frozenset({Role.MANAGER}))


@pytest.fixture
def ctx(session_factory: sessionmaker[Session]) -> Context:
    return Context(Settings(_env_file=None), session_factory, None)  # type: ignore[arg-type]  # no Temporal


def shown(ctx: Context, artifact_id: int) -> tuple[str, str | None, str | None, bool]:
    """(label the library shows, the evaluator's label, who decided, waiting in the inbox)."""
    with ctx.sessions() as session:
        e = session.execute(select(Evaluation).where(Evaluation.artifact_id == artifact_id)).scalar_one()
        return e.label, e.model_label, e.reviewed_by, e.needs_review


def audit(ctx: Context) -> list[tuple[str, str, str, str | None]]:
    with ctx.sessions() as session:
        rows = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars()
        return [(a.actor, a.action, a.target, a.reason) for a in rows]


def test_doubtful_verdicts_wait_in_the_inbox_and_a_person_decides_them(ctx: Context) -> None:
    doubt, sure = store_documents(
        ctx.sessions, "feeds", [Verdict("Bank fined over records", "review"), Verdict("Cake", "irrelevant")]
    )
    with ctx.sessions() as session:
        assert [i.artifact_id for i in repository.waiting(session)] == [doubt]
        assert repository.waiting(session)[0].why == "the evaluator was in doubt"
    result = reviews.review(ANALYST, ctx, artifact_id=doubt, label="relevant", reason="a fine is compliance")
    assert (result.decided, result.overridden) == (1, 1)
    assert shown(ctx, doubt) == ("relevant", "review", "ana@example.org", False)
    assert shown(ctx, sure) == ("irrelevant", "irrelevant", None, False)
    with ctx.sessions() as session:
        assert repository.count_waiting(session) == 0
    assert audit(ctx)[-1] == (
        "ana@example.org",
        "review:override",
        f"artifact:{doubt}",
        "review -> relevant: a fine is compliance",
    )


def test_an_override_needs_a_reason_and_a_confirmation_does_not(ctx: Context) -> None:
    (doc,) = store_documents(ctx.sessions, "feeds", [Verdict("Patch Tuesday", "relevant", confidence=0.55)])
    with pytest.raises(Refused, match="needs a reason"):
        reviews.review(ANALYST, ctx, artifact_id=doc, label="irrelevant", reason="  ")
    assert shown(ctx, doc) == ("relevant", "relevant", None, True)  # nothing changed
    with pytest.raises(Refused, match="relevant or irrelevant"):
        reviews.review(ANALYST, ctx, artifact_id=doc, label="maybe")
    reviews.review(ANALYST, ctx, artifact_id=doc, label="relevant")
    assert shown(ctx, doc) == ("relevant", "relevant", "ana@example.org", False)
    assert audit(ctx)[-1][1:] == ("review:confirm", f"artifact:{doc}", "relevant -> relevant")


def test_only_analysts_and_above_review_and_a_refusal_is_audited(ctx: Context) -> None:
    (doc,) = store_documents(ctx.sessions, "feeds", [Verdict("Outage", "review")])
    for person in (VIEWER, MANAGER):
        with pytest.raises(Forbidden, match="analyst"):
            reviews.review(person, ctx, artifact_id=doc, label="relevant")
    assert shown(ctx, doc)[2] is None
    assert [a[1] for a in audit(ctx)] == ["refused:review", "refused:review"]
    operator = Actor("olga@example.org", frozenset({Role.OPERATOR}))
    reviews.review(operator, ctx, artifact_id=doc, label="relevant", reason="an outage is an incident")


def test_a_re_evaluation_never_overwrites_a_persons_decision(ctx: Context) -> None:
    (doc,) = store_documents(ctx.sessions, "feeds", [Verdict("Breach at clinic", "review")])
    reviews.review(ANALYST, ctx, artifact_id=doc, label="relevant", reason="patient data stolen")
    with ctx.sessions.begin() as session:  # the pipeline evaluates the document again, as a re-run would
        repository.upsert_evaluations(
            session,
            rows=[
                {
                    "artifact_id": doc,
                    "label": "irrelevant",
                    "confidence": 0.8,
                    "relevance": 0.2,
                    "credibility": 0.5,
                    "rationale": "new model",
                    "evaluator": "semantic",
                    "model": "m2",
                    "topics_version": "v2",
                }
            ],
        )
    assert shown(ctx, doc) == ("relevant", "irrelevant", "ana@example.org", False)


def test_bulk_confirmation_decides_exactly_what_the_person_was_shown(ctx: Context) -> None:
    unsure = [Verdict(f"Item {i}", "irrelevant", confidence=0.55) for i in range(4)]
    mine = store_documents(ctx.sessions, "feeds", unsure)
    other = store_documents(ctx.sessions, "pages", [Verdict("Other source", "irrelevant", confidence=0.55)])
    with ctx.sessions() as session:
        source_id = session.execute(select(Artifact.source_id).where(Artifact.id == mine[0])).scalar_one()
    f = ReviewFilter(source_id=source_id, model_label="irrelevant")
    with pytest.raises(Refused, match="4 documents wait on this filter now, not 3"):
        reviews.review_waiting(ANALYST, ctx, f=f, expected=3)
    with pytest.raises(Refused, match="filter on the evaluator's label"):
        reviews.review_waiting(ANALYST, ctx, f=ReviewFilter(source_id=source_id), expected=4)
    result = reviews.review_waiting(ANALYST, ctx, f=f, expected=4)
    assert (result.decided, result.overridden) == (4, 0)
    assert {shown(ctx, d) for d in mine} == {("irrelevant", "irrelevant", "ana@example.org", False)}
    assert shown(ctx, other[0]) == ("irrelevant", "irrelevant", None, True)  # another source's: untouched
    assert audit(ctx)[-1][1] == "review:bulk" and "4 documents" in (audit(ctx)[-1][3] or "")


def test_bulk_override_needs_a_reason(ctx: Context) -> None:
    docs = store_documents(ctx.sessions, "feeds", [Verdict(f"n{i}", "review") for i in range(3)])
    f = ReviewFilter(reason="review")
    with pytest.raises(Refused, match="needs a reason"):
        reviews.review_waiting(ANALYST, ctx, f=f, expected=3, label="irrelevant")
    result = reviews.review_waiting(
        ANALYST, ctx, f=f, expected=3, label="irrelevant", reason="press releases"
    )
    assert (result.decided, result.overridden) == (3, 3)
    assert {shown(ctx, d)[0] for d in docs} == {"irrelevant"}


def test_a_reader_reports_a_verdict_and_it_goes_back_to_the_inbox(ctx: Context) -> None:
    (doc,) = store_documents(ctx.sessions, "feeds", [Verdict("Storm breaches sea wall", "relevant")])
    with pytest.raises(Refused, match="needs a reason"):
        reviews.report(VIEWER, ctx, artifact_id=doc, note="")
    reviews.report(VIEWER, ctx, artifact_id=doc, note="this is about weather")
    with ctx.sessions() as session:
        (item,) = repository.waiting(session)
    assert (item.artifact_id, item.why, item.report_note) == (
        doc,
        "a reader reported it",
        "this is about weather",
    )
    reviews.review(ANALYST, ctx, artifact_id=doc, label="irrelevant", reason="weather, not a breach")
    assert shown(ctx, doc) == ("irrelevant", "relevant", "ana@example.org", False)


def test_agreement_counts_overrides_per_evaluator_and_source(ctx: Context) -> None:
    a = store_documents(
        ctx.sessions, "feeds", [Verdict(f"f{i}", "relevant", confidence=0.55) for i in range(4)]
    )
    b = store_documents(
        ctx.sessions, "pages", [Verdict("p", "irrelevant", confidence=0.55)], evaluator="keywords"
    )
    reviews.review(ANALYST, ctx, artifact_id=a[0], label="irrelevant", reason="wrong")
    for doc in a[1:]:
        reviews.review(ANALYST, ctx, artifact_id=doc, label="relevant")
    reviews.review(ANALYST, ctx, artifact_id=b[0], label="relevant", reason="wrong too")
    with ctx.sessions() as session:
        rows = repository.agreement(session, since=utcnow() - timedelta(days=7))
    assert {(r.evaluator, r.source_name, r.reviewed, r.overridden) for r in rows} == {
        ("semantic", "feeds", 4, 1),
        ("keywords", "pages", 1, 1),
    }


def test_an_item_waiting_past_the_configured_age_is_overdue(ctx: Context) -> None:
    (old,) = store_documents(ctx.sessions, "feeds", [Verdict("Old", "review")])
    store_documents(ctx.sessions, "feeds", [Verdict("New", "review")])
    with ctx.sessions.begin() as session:
        session.execute(
            Evaluation.__table__.update()
            .where(Evaluation.artifact_id == old)
            .values(created_at=utcnow() - timedelta(hours=50))
        )
    with ctx.sessions() as session:
        assert repository.count_overdue(session, older_than=utcnow() - timedelta(hours=48)) == 1
