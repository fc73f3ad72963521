"""The cancellation rules of the operations layer, in process on a real SQLite library: who may cancel, what
needs a reason, which batches can be stopped, the count a bulk cancellation was confirmed with, and that
nothing is written when Temporal did not take the request (its address here has nobody listening)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cli.devserver import free_port
from core.roles import Role
from core.settings import Settings
from core.vocabulary import BatchStatus
from data import repository
from data.models import AuditEvent, utcnow
from operations import Actor, Context, Forbidden, NotAccepted, Refused
from operations import cancellation as cancel_ops
from orchestration.gateway import TemporalGateway, TemporalUnavailable

OPERATOR = Actor("olga", frozenset({Role.OPERATOR}))
ANALYST = Actor("ana", frozenset({Role.ANALYST}))


@pytest.fixture
def ctx(sqlite_sessions: sessionmaker[Session]) -> Iterator[Context]:
    gateway = TemporalGateway(f"127.0.0.1:{free_port()}", connect_timeout=1, retry_after=0)
    yield Context(Settings(), sqlite_sessions, gateway)
    gateway.close()


def batch(sessions: sessionmaker[Session], source: str, status: str, **fields: object) -> int:
    with sessions.begin() as session:
        try:
            source_id = repository.find_source(session, ref=source).id
        except repository.NotFound:
            source_id = repository.create_source(session, name=source, kind="folder", location="/tmp/x").id
        row = repository.create_batch(session, source_id=source_id)
        row.status, row.workflow_id, row.started_at = status, f"batch-{row.id}-test", utcnow()
        for name, value in fields.items():
            setattr(row, name, value)
        return row.id


def audit(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with sessions() as session:
        return [
            tuple(r) for r in session.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.target))
        ]  # type: ignore[misc]


def decision(sessions: sessionmaker[Session], batch_id: int) -> tuple[str | None, str | None]:
    with sessions() as session:
        row = repository.get_batch(session, batch_id=batch_id)
        return row.decision, row.status


def test_only_operators_and_admins_cancel_and_a_refusal_is_audited(
    ctx: Context, sqlite_sessions: sessionmaker[Session]
) -> None:
    running = batch(sqlite_sessions, "feeds", BatchStatus.RUNNING)
    with pytest.raises(Forbidden, match="You need the operator or admin role to cancel running batches"):
        cancel_ops.cancel(ANALYST, ctx, running, reason="mine now")
    with pytest.raises(Forbidden):
        cancel_ops.cancel_matching(ANALYST, ctx, cancel_ops.RunningFilter(), reason="all", expected=1)
    assert audit(sqlite_sessions) == [
        ("ana", "refused:cancel", f"batch:{running}"),
        ("ana", "refused:cancel", "batches:matching"),
    ]
    assert decision(sqlite_sessions, running) == (None, BatchStatus.RUNNING)


def test_a_cancellation_needs_a_reason_and_a_batch_that_still_runs(
    ctx: Context, sqlite_sessions: sessionmaker[Session]
) -> None:
    running = batch(sqlite_sessions, "feeds", BatchStatus.RUNNING)
    done = batch(sqlite_sessions, "feeds", BatchStatus.COMPLETED)
    cancelling = batch(sqlite_sessions, "feeds", BatchStatus.RUNNING, decision="cancelled", decided_by="ben")
    unstarted = batch(
        sqlite_sessions, "feeds", "pending", workflow_id="source-1-refresh/run-9", started_at=None
    )
    with pytest.raises(Refused, match="a cancellation needs a reason"):
        cancel_ops.cancel(OPERATOR, ctx, running, reason="  \n ")
    with pytest.raises(NotAccepted, match=f"batch {done} is not running \\(it is completed\\)"):
        cancel_ops.cancel(OPERATOR, ctx, done, reason="stop")
    with pytest.raises(NotAccepted, match=f"batch {cancelling} is being cancelled already \\(by ben\\)"):
        cancel_ops.cancel(OPERATOR, ctx, cancelling, reason="stop")
    with pytest.raises(NotAccepted, match="has not started its workflow yet"):
        cancel_ops.cancel(OPERATOR, ctx, unstarted, reason="stop")
    with pytest.raises(Refused, match="no batch with id 999"):
        cancel_ops.cancel(OPERATOR, ctx, 999, reason="stop")
    assert audit(sqlite_sessions) == []


def test_nothing_is_written_when_temporal_did_not_take_the_request(
    ctx: Context, sqlite_sessions: sessionmaker[Session]
) -> None:
    running = batch(sqlite_sessions, "feeds", BatchStatus.RUNNING)
    with pytest.raises(TemporalUnavailable):
        cancel_ops.cancel(OPERATOR, ctx, running, reason="wrong source")
    outcomes = cancel_ops.cancel_many(OPERATOR, ctx, [running], reason="wrong source")
    assert [(o.accepted, o.message.split(". ")[0]) for o in outcomes] == [
        (False, f"Batch {running}: not sent")
    ]
    assert decision(sqlite_sessions, running) == (None, BatchStatus.RUNNING)
    assert audit(sqlite_sessions) == []


def test_a_bulk_cancellation_matches_running_batches_and_holds_to_the_count_confirmed(
    ctx: Context, sqlite_sessions: sessionmaker[Session]
) -> None:
    feeds = [
        batch(sqlite_sessions, "feeds", BatchStatus.RUNNING),
        batch(sqlite_sessions, "feeds", "awaiting_approval"),
    ]
    other = batch(sqlite_sessions, "pages", BatchStatus.RUNNING)
    batch(sqlite_sessions, "feeds", BatchStatus.COMPLETED)

    def ids(f: cancel_ops.RunningFilter) -> list[int]:
        return [b.batch_id for b in cancel_ops.running_matching(ctx, f)]

    assert ids(cancel_ops.RunningFilter()) == [*feeds, other]
    assert ids(cancel_ops.RunningFilter(source="feeds")) == feeds
    assert ids(cancel_ops.RunningFilter(source="feeds", status=BatchStatus.RUNNING)) == feeds[:1]
    assert ids(cancel_ops.RunningFilter(status=BatchStatus.COMPLETED)) == []  # only running batches stop
    with pytest.raises(Refused, match="no source named or numbered 'nope'"):
        ids(cancel_ops.RunningFilter(source="nope"))

    # A third batch started since the person saw two: refused, nothing sent.
    with pytest.raises(Refused, match="3 running batch\\(es\\) match now, more than the 2 you confirmed"):
        cancel_ops.cancel_matching(OPERATOR, ctx, cancel_ops.RunningFilter(), reason="runaway", expected=2)
    outcomes = cancel_ops.cancel_matching(
        OPERATOR, ctx, cancel_ops.RunningFilter(source="feeds"), reason="runaway", expected=2
    )
    assert [o.batch_id for o in outcomes] == feeds  # each tried (Temporal is not there: each says so)
    assert not any(o.accepted for o in outcomes)
